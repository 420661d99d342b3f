/* Test server: the classic blocking loop. accept() one connection, serve its requests
 * (keep-alive included) until it closes, then accept the next. */
#include "http.h"

int main(int argc, char **argv)
{
    http_check_usage(argc, argv);
    http_app_init();
    return http_serve_blocking(http_listen(argv[1], false));
}
