/* Sizes every layer shares. */
#pragma once

#define PAGE 4096ull            /* the x86-64 page, host and guest */
#define KIB (1ull << 10)
#define MIB (1ull << 20)
#define GIB (1ull << 30)
