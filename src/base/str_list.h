/* A list of strings: what the command line gives, and what the layers below are handed. */
#pragma once
#include <stddef.h>

struct str_list {
    char **items;
    size_t count;
};
