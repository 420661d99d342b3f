/* A storage program for `kvmserver storage`: a key-value store on a unix socket, one line
 * per command and one line per answer, any number of commands per connection:
 *
 *   get KEY          -> VALUE, or "-" when KEY is not set
 *   set KEY VALUE    -> "ok"
 *   incr KEY         -> the new count (a KEY never set counts from 0)
 *   pid              -> this process's pid (with --1-to-1, each storage VM has its own)
 *
 *   kvstore PATH     (listens on the unix socket PATH)
 *
 * Under `kvmserver storage ./kvstore /tmp/kv.sock ++ run ...` it runs in the storage VM,
 * which is never reset: what request VMs store here outlives their requests. See
 * examples/storefront.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_KEYS 1024
#define MAX_KEY 64
#define MAX_VALUE 256
#define MAX_LINE (MAX_KEY + MAX_VALUE + 16)

static struct entry {
    char key[MAX_KEY];
    char value[MAX_VALUE];
} entries[MAX_KEYS];
static int nentries;

static struct entry *find(const char *key, int create)
{
    for (int i = 0; i < nentries; i++)
        if (!strcmp(entries[i].key, key))
            return &entries[i];
    if (!create || nentries == MAX_KEYS || strlen(key) >= MAX_KEY)
        return NULL;
    struct entry *e = &entries[nentries++];
    strcpy(e->key, key);
    e->value[0] = '\0';
    return e;
}

/* Answers one command line (NUL-terminated, without its newline) into out. */
static void run_command(char *line, char *out, size_t size)
{
    char *verb = strtok(line, " "), *key = strtok(NULL, " "), *value = strtok(NULL, "");
    struct entry *e;
    if (verb && !key && !strcmp(verb, "pid")) {
        snprintf(out, size, "%d\n", (int)getpid());
    } else if (!verb || !key) {
        snprintf(out, size, "error: expected get KEY, set KEY VALUE or incr KEY\n");
    } else if (!strcmp(verb, "get")) {
        e = find(key, 0);
        snprintf(out, size, "%s\n", e ? e->value : "-");
    } else if (!strcmp(verb, "set") && value && strlen(value) < MAX_VALUE &&
               (e = find(key, 1))) {
        strcpy(e->value, value);
        snprintf(out, size, "ok\n");
    } else if (!strcmp(verb, "incr") && (e = find(key, 1))) {
        snprintf(e->value, sizeof e->value, "%ld", strtol(e->value, NULL, 10) + 1);
        snprintf(out, size, "%s\n", e->value);
    } else {
        snprintf(out, size, "error: bad command or store full\n");
    }
}

static void serve_connection(int fd)
{
    char line[MAX_LINE + 1];
    size_t used = 0;
    for (;;) {
        ssize_t n = read(fd, line + used, MAX_LINE - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        used += (size_t)n;
        char *nl;
        while ((nl = memchr(line, '\n', used))) {
            *nl = '\0';
            char out[MAX_VALUE + 64];
            run_command(line, out, sizeof out);
            if (write(fd, out, strlen(out)) < 0)
                return;
            used -= (size_t)(nl + 1 - line);
            memmove(line, nl + 1, used);
        }
        if (used == MAX_LINE)
            return;         /* a line too long for any command */
    }
}

int main(int argc, char **argv)
{
    if (argc != 2 || strlen(argv[1]) >= sizeof ((struct sockaddr_un *)0)->sun_path) {
        fprintf(stderr, "usage: %s UNIX-SOCKET-PATH\n", argv[0]);
        return 2;
    }
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    strcpy(addr.sun_path, argv[1]);
    unlink(argv[1]);
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        listen(listener, 64) < 0) {
        perror("kvstore: socket/bind/listen");
        return 1;
    }
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            perror("kvstore: accept");
            return 1;
        }
        serve_connection(fd);
        close(fd);
    }
}
