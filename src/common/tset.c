#include "common/tset.h"

#include <string.h>

void tset_init(struct tset *s)
{
    memset(s, 0, sizeof *s);
}

static int less(const struct tset_node *a, const struct tset_node *b)
{
    return a->score_ns < b->score_ns || (a->score_ns == b->score_ns && a->seq < b->seq);
}

/*
 * A node's treap priority: its insertion number scrambled by splitmix64's
 * finalizer (a bijection, so every insertion gets a distinct, well spread
 * value, a new one each time the node is inserted again). Like the xorshift
 * values it replaces, spread but not unpredictable. Derived rather than
 * stored: the 4 bytes (8 with padding) would be paid by every job.
 */
static uint64_t prio(const struct tset_node *n)
{
    uint64_t z = n->seq + UINT64_C(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static struct tset_node *insert_at(struct tset_node *root, struct tset_node *n)
{
    if (!root)
        return n;
    if (less(n, root)) {
        root->left = insert_at(root->left, n);
        if (prio(root->left) > prio(root)) {
            struct tset_node *l = root->left;
            root->left = l->right;
            l->right = root;
            return l;
        }
    } else {
        root->right = insert_at(root->right, n);
        if (prio(root->right) > prio(root)) {
            struct tset_node *r = root->right;
            root->right = r->left;
            r->left = root;
            return r;
        }
    }
    return root;
}

void tset_insert(struct tset *s, struct tset_node *node, int64_t score_ns)
{
    node->left = node->right = NULL;
    node->score_ns = score_ns;
    node->seq = s->next_seq++;
    s->root = insert_at(s->root, node);
    s->count++;
}

static struct tset_node *merge(struct tset_node *a, struct tset_node *b)
{
    if (!a)
        return b;
    if (!b)
        return a;
    if (prio(a) > prio(b)) {
        a->right = merge(a->right, b);
        return a;
    }
    b->left = merge(a, b->left);
    return b;
}

void tset_remove(struct tset *s, struct tset_node *node)
{
    struct tset_node **link = &s->root;
    while (*link && *link != node)
        link = less(node, *link) ? &(*link)->left : &(*link)->right;
    if (!*link)
        return;
    *link = merge(node->left, node->right);
    node->left = node->right = NULL;
    s->count--;
}

struct tset_node *tset_min(const struct tset *s)
{
    struct tset_node *n = s->root;
    while (n && n->left)
        n = n->left;
    return n;
}

static int walk(struct tset_node *n, int (*fn)(struct tset_node *, void *), void *arg)
{
    while (n) {
        int rc = walk(n->left, fn, arg);
        if (rc)
            return rc;
        rc = fn(n, arg);
        if (rc)
            return rc;
        n = n->right; /* loop instead of recursing on the right spine */
    }
    return 0;
}

int tset_walk(const struct tset *s, int (*fn)(struct tset_node *node, void *arg), void *arg)
{
    return walk(s->root, fn, arg);
}
