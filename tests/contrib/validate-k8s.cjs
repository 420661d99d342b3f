// Validates every object of the given Kubernetes YAML files against the API schema
// (npm kubernetes-models), offline. Usage: node validate-k8s.cjs NODE_MODULES FILE...
// Prints one line per object; exits 1 if any object is invalid or of an unknown kind.
const path = require("path");
const fs = require("fs");
const modules = process.argv[2];
const load = (name) => require(path.join(modules, name));
const YAML = load("yaml");

let failed = false;
for (const file of process.argv.slice(3)) {
  for (const doc of YAML.parseAllDocuments(fs.readFileSync(file, "utf8"))) {
    if (doc.errors.length) {
      console.log(`${file}: YAML error: ${doc.errors[0].message}`);
      failed = true;
      continue;
    }
    const object = doc.toJS();
    if (object === null) continue;
    const where = `${file}: ${object.kind} ${object.metadata && object.metadata.name}`;
    let Model;
    try {
      Model = load(`kubernetes-models/${object.apiVersion}`)[object.kind];
    } catch {
      Model = undefined;   // no such apiVersion folder: reported below
    }
    if (!Model) {
      console.log(`${where}: unknown apiVersion/kind ${object.apiVersion}/${object.kind}`);
      failed = true;
      continue;
    }
    try {
      new Model(object).validate();
      console.log(`${where}: valid`);
    } catch (error) {
      console.log(`${where}: INVALID: ${error.message}`);
      failed = true;
    }
  }
}
process.exit(failed ? 1 : 0);
