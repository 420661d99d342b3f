// A static Rust program with threads, collections and an exit status: run natively and
// inside kvmserver by tests/e2e/test_languages.py, which compares the two.
use std::collections::BTreeMap;
use std::thread;
fn main() {
    let handles: Vec<_> = (0..4).map(|i| thread::spawn(move || (0..10000u64).map(|x| x % (i + 2)).sum::<u64>())).collect();
    let sums: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut m = BTreeMap::new();
    m.insert("z", 1); m.insert("a", 2);
    println!("{:?} {:?} {}", sums, m, std::env::args().count());
    std::process::exit(5);
}
