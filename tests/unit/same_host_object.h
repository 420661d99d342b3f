/* For the fd-table unit tests: whether two host fds are the same object (file, pipe, socket). */
#ifndef KVMS_TEST_SAME_HOST_OBJECT_H
#define KVMS_TEST_SAME_HOST_OBJECT_H
#include <stdbool.h>
#include <sys/stat.h>

static bool same_host_object(int a, int b)
{
    struct stat sa, sb;
    assert_int_equal(fstat(a, &sa), 0);
    assert_int_equal(fstat(b, &sb), 0);
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

#endif
