/* Host-built 4-level page tables (see paging.h). */
#include "vm/paging.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/units.h"
#include "vm/working_set.h"

#define LEVELS 4

static unsigned index_at(uint64_t va, int level)   /* level 3 = PML4 ... 0 = PT */
{
    return (unsigned)((va >> (12 + 9 * level)) & 511);
}

static bool canonical_user(uint64_t va)
{
    return va < (1ull << 47);
}

/* A table at guest-physical `pa`, or NULL if it does not lie inside memory. */
static uint64_t *table_at(const struct paging *pt, uint64_t pa)
{
    if (pa % PAGE || pa >= pt->mem_size || pt->mem_size - pa < PAGE)
        return NULL;
    return (uint64_t *)(pt->mem + pa);
}

/* Did going from entry `old` to `new` take a right away (presence, write, user, execute)? */
static bool takes_rights(uint64_t old, uint64_t new)
{
    if (!(old & PTE_P))
        return false;
    return !(new & PTE_P) || ((old & PTE_W) && !(new & PTE_W)) ||
           ((old & PTE_U) && !(new & PTE_U)) || (!(old & PTE_NX) && (new & PTE_NX)) ||
           (old & PTE_ADDR_MASK) != (new & PTE_ADDR_MASK);
}

/* Records that the host changed the table entry at `entry` (a fork must undo it on reset). */
static void note_edit(struct paging *pt, const uint64_t *entry)
{
    if (pt->track)
        ws_add_range(pt->track, (uint64_t)((const uint8_t *)entry - pt->mem), sizeof *entry);
}

/* Records the leaf's frame when going from `old` to `new` granted it a right. */
static void note_grant(struct paging *pt, uint64_t old, uint64_t new)
{
    if (pt->granted && takes_rights(new, old))
        ws_add_range(pt->granted, new & PTE_ADDR_MASK, PAGE);
}

static uint64_t alloc_table(struct paging *pt)
{
    if (pt->pool_next >= pt->pool_end)
        return 0;
    uint64_t pa = pt->pool_next;
    pt->pool_next += PAGE;
    memset(pt->mem + pa, 0, PAGE);
    note_edit(pt, (uint64_t *)(pt->mem + pa));
    return pa;
}

int pt_init(struct paging *pt, uint8_t *mem, uint64_t mem_size,
            uint64_t pool_start, uint64_t pool_end)
{
    if (pool_start % PAGE || pool_end % PAGE || pool_start >= pool_end || pool_end > mem_size)
        return -EINVAL;
    *pt = (struct paging){ .mem = mem, .mem_size = mem_size,
                           .pool_next = pool_start, .pool_end = pool_end };
    pt->root = alloc_table(pt);
    return pt->root ? 0 : -ENOMEM;
}

/* The leaf slot for va, creating intermediate tables when `create`. Intermediate entries
 * grant everything (P|W|U, and A set: a fork's scan follows an entry the host made during
 * a request without relying on the CPU's walk); leaves decide. */
static uint64_t *leaf_slot(struct paging *pt, uint64_t va, bool create)
{
    uint64_t *table = table_at(pt, pt->root);
    for (int level = LEVELS - 1; level > 0 && table; level--) {
        uint64_t *e = &table[index_at(va, level)];
        if (!(*e & PTE_P)) {
            if (!create)
                return NULL;
            uint64_t pa = alloc_table(pt);
            if (!pa)
                return NULL;
            *e = pa | PTE_P | PTE_W | PTE_U | PTE_A;
            note_edit(pt, e);
        }
        if (*e & PTE_PS)
            return NULL;        /* we never build large pages */
        table = table_at(pt, *e & PTE_ADDR_MASK);
    }
    return table ? &table[index_at(va, 0)] : NULL;
}

static int check_range(uint64_t va, uint64_t len)
{
    if (va % PAGE || len % PAGE || va + len < va || !canonical_user(va + len - (len ? 1 : 0)))
        return -EINVAL;
    return 0;
}

int pt_map(struct paging *pt, uint64_t va, uint64_t pa, uint64_t len, uint64_t flags)
{
    int err = check_range(va, len);
    if (err)
        return err;
    if (pa % PAGE || pa + len < pa || pa + len > pt->mem_size)
        return -EINVAL;
    flags &= PTE_W | PTE_U | PTE_NX | PTE_PKEY_MASK;
    for (uint64_t off = 0; off < len; off += PAGE) {
        uint64_t *slot = leaf_slot(pt, va + off, true);
        if (!slot)
            return -ENOMEM;
        /* Keep a D bit already set: it marks a page written since the image was taken. */
        uint64_t e = ((pa + off) | flags | PTE_P | PTE_A) | (*slot & PTE_D);
        pt->revoked += takes_rights(*slot, e);
        note_grant(pt, *slot, e);
        *slot = e;
        note_edit(pt, slot);
    }
    return 0;
}

int pt_map_mmio(struct paging *pt, uint64_t va, uint64_t pa, uint64_t flags)
{
    if (check_range(va, PAGE) || pa % PAGE || pa < pt->mem_size)
        return -EINVAL;
    uint64_t *slot = leaf_slot(pt, va, true);
    if (!slot)
        return -ENOMEM;
    *slot = pa | (flags & (PTE_W | PTE_U | PTE_NX)) | PTE_P | PTE_A;
    note_edit(pt, slot);
    return 0;
}

static void user_leaves(const struct paging *pt, uint64_t table_pa, int level, uint64_t base,
                        bool write, bool exec, uint64_t end, pt_leaf_fn fn, void *ctx)
{
    const uint64_t *table = table_at(pt, table_pa);
    if (!table)
        return;
    uint64_t span = PAGE << (9 * level);
    for (unsigned i = 0; i < 512; i++) {
        uint64_t va = base + i * span;
        if (va >= end)
            return;
        uint64_t e = table[i];
        if (!(e & PTE_P) || !(e & PTE_U))
            continue;
        bool w_ok = write && (e & PTE_W), x_ok = exec && !(e & PTE_NX);
        if (level == 0 || (e & PTE_PS))
            fn(ctx, va, span, w_ok, x_ok);
        else
            user_leaves(pt, e & PTE_ADDR_MASK, level - 1, va, w_ok, x_ok, end, fn, ctx);
    }
}

void pt_for_each_user_leaf(const struct paging *pt, uint64_t end, pt_leaf_fn fn, void *ctx)
{
    if (pt->mem)
        user_leaves(pt, pt->root, LEVELS - 1, 0, true, true, end, fn, ctx);
}

/* A walk over the present leaves of [start, end): absent upper-level tables are skipped whole,
 * so the work follows what is mapped, not the range's size. */
struct walk {
    uint64_t start, end;
    uint64_t follow;          /* bits an upper-level entry needs to be descended into */
    uint64_t clear_upper;     /* bits cleared in every upper-level entry descended into */
    void (*visit)(struct paging *pt, uint64_t *leaf, void *ctx);
    void *ctx;
};

static void walk_table(struct paging *pt, const struct walk *w, uint64_t table_pa, int level,
                       uint64_t base)
{
    uint64_t *table = table_at(pt, table_pa);
    if (!table)
        return;
    uint64_t span = 1ull << (12 + 9 * level);
    for (unsigned i = 0; i < 512; i++) {
        uint64_t lo = base + i * span, hi = lo + span;
        if (hi <= w->start || lo >= w->end || !(table[i] & PTE_P))
            continue;
        if (level == 0) {
            w->visit(pt, &table[i], w->ctx);
        } else if ((table[i] & w->follow) == w->follow && !(table[i] & PTE_PS)) {
            table[i] &= ~w->clear_upper;
            walk_table(pt, w, table[i] & PTE_ADDR_MASK, level - 1, lo);
        }
    }
}

static void visit_leaves(struct paging *pt, uint64_t start, uint64_t end,
                         void (*visit)(struct paging *pt, uint64_t *leaf, void *ctx), void *ctx)
{
    struct walk w = { .start = start, .end = end, .follow = PTE_P, .visit = visit, .ctx = ctx };
    walk_table(pt, &w, pt->root, LEVELS - 1, 0);
}

static void protect_leaf(struct paging *pt, uint64_t *leaf, void *ctx)
{
    uint64_t e = (*leaf & ~(PTE_W | PTE_U | PTE_NX)) | *(const uint64_t *)ctx;
    pt->revoked += takes_rights(*leaf, e);
    note_grant(pt, *leaf, e);
    *leaf = e;
    note_edit(pt, leaf);
}

int pt_protect(struct paging *pt, uint64_t va, uint64_t len, uint64_t flags)
{
    int err = check_range(va, len);
    if (err)
        return err;
    flags &= PTE_W | PTE_U | PTE_NX;
    if (len)
        visit_leaves(pt, va, va + len, protect_leaf, &flags);
    return 0;
}

uint64_t pt_lookup(const struct paging *pt, uint64_t va)
{
    if (!canonical_user(va))
        return 0;
    uint64_t *slot = leaf_slot((struct paging *)pt, va, false);
    if (!slot || !(*slot & PTE_P))
        return 0;
    if ((*slot & PTE_ADDR_MASK) >= pt->mem_size)
        return 0;
    return *slot;
}

void pt_clean(struct paging *pt, uint64_t frame)
{
    uint64_t *slot = canonical_user(frame) ? leaf_slot(pt, frame, false) : NULL;
    if (slot && (*slot & PTE_P) && (*slot & PTE_ADDR_MASK) == frame)
        *slot &= ~PTE_D;
}

struct count_ctx { uint64_t flags, found; };

static void count_leaf(struct paging *pt, uint64_t *leaf, void *ctx)
{
    (void)pt;
    struct count_ctx *c = ctx;
    c->found += (*leaf & c->flags) == c->flags;
}

uint64_t pt_count(const struct paging *pt, uint64_t va, uint64_t len, uint64_t flags)
{
    struct count_ctx c = { .flags = flags | PTE_P };
    if (len && va + len > va)
        visit_leaves((struct paging *)pt, va, va + len, count_leaf, &c);
    return c.found;
}

struct dirty_ctx {
    bool clear;
    void (*fn)(void *ctx, uint64_t frame);
    void *ctx;
    size_t visited;
};

static void dirty_leaf(struct paging *pt, uint64_t *leaf, void *ctx)
{
    struct dirty_ctx *d = ctx;
    d->visited++;
    if (!(*leaf & PTE_D))
        return;
    if (d->clear)
        *leaf &= ~PTE_D;
    else if ((*leaf & PTE_ADDR_MASK) < pt->mem_size)
        d->fn(d->ctx, *leaf & PTE_ADDR_MASK);
}

/* Whether the walked subtree of the table at `table_pa` holds a D leaf, clearing the A bit
 * of each of its upper entries whose subtree holds none. */
static bool prune_table(struct paging *pt, uint64_t table_pa, int level, size_t *visited)
{
    uint64_t *table = table_at(pt, table_pa);
    if (!table)
        return true;         /* not memory: keep the way to it */
    bool dirty = false;
    for (unsigned i = 0; i < 512; i++) {
        uint64_t e = table[i];
        if (!(e & PTE_P))
            continue;
        if (level == 0) {
            ++*visited;
            dirty |= (e & PTE_D) != 0;
        } else if ((e & PTE_A) && !(e & PTE_PS)) {
            if (prune_table(pt, e & PTE_ADDR_MASK, level - 1, visited))
                dirty = true;
            else
                table[i] = e & ~PTE_A;
        }
    }
    return dirty;
}

size_t pt_prune_clean(struct paging *pt)
{
    size_t visited = 0;
    prune_table(pt, pt->root, LEVELS - 1, &visited);
    return visited;
}

size_t pt_scan_dirty(struct paging *pt, bool clear, void (*fn)(void *ctx, uint64_t frame),
                     void *ctx)
{
    struct dirty_ctx d = { .clear = clear, .fn = fn, .ctx = ctx };
    /* Clearing: every upper-level entry loses its A bit too. Reporting: only entries the CPU
     * walked since (A set) are followed; to set a D bit it must have walked all of them. */
    struct walk w = { .start = 0, .end = 1ull << 47, .follow = clear ? PTE_P : PTE_P | PTE_A,
                      .clear_upper = clear ? PTE_A : 0, .visit = dirty_leaf, .ctx = &d };
    walk_table(pt, &w, pt->root, LEVELS - 1, 0);
    return d.visited;
}

void pt_clear_dirty(struct paging *pt)
{
    struct dirty_ctx d = { .clear = true };
    struct walk w = { .start = 0, .end = 1ull << 47, .follow = PTE_P, .visit = dirty_leaf,
                      .ctx = &d };
    walk_table(pt, &w, pt->root, LEVELS - 1, 0);
}

/* Walks the tree under table_pa: every table in the pool, each reached once. */
static bool valid_table(const struct paging *pt, uint64_t table_pa, int level,
                        uint64_t pool_start, uint8_t *seen)
{
    if (table_pa < pool_start || table_pa >= pt->pool_next || table_pa % PAGE)
        return false;
    uint64_t idx = (table_pa - pool_start) / PAGE;
    if (seen[idx / 8] & (1u << (idx % 8)))
        return false;
    seen[idx / 8] |= (uint8_t)(1u << (idx % 8));
    const uint64_t *table = table_at(pt, table_pa);
    for (unsigned i = 0; table && i < 512; i++) {
        uint64_t e = table[i];
        if (!(e & PTE_P))
            continue;
        uint64_t pa = e & PTE_ADDR_MASK;
        if (level == 0 || (e & PTE_PS)) {
            if (level != 0 || (pa >= pool_start && pa != pt->mem_size))
                return false;
        } else if (!valid_table(pt, pa, level - 1, pool_start, seen)) {
            return false;
        }
    }
    return table != NULL;
}

bool pt_valid(const struct paging *pt, uint64_t pool_start)
{
    if (pool_start % PAGE || pt->pool_next % PAGE || pt->pool_end % PAGE ||
        pool_start > pt->pool_next || pt->pool_next > pt->pool_end ||
        pt->pool_end > pt->mem_size)
        return false;
    uint64_t pages = (pt->pool_next - pool_start) / PAGE;
    uint8_t *seen = calloc(pages / 8 + 1, 1);
    if (!seen)
        return false;
    bool ok = valid_table(pt, pt->root, LEVELS - 1, pool_start, seen);
    free(seen);
    return ok;
}
