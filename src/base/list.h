#ifndef HR_BASE_LIST_H
#define HR_BASE_LIST_H

#include <stdbool.h>
#include <stddef.h>

/* Intrusive circular doubly-linked list. A node embedded in its owner; the head is a
 * node too. O(1) insert and remove; an unlinked node points to itself. */
typedef struct hr_list {
    struct hr_list *prev, *next;
} hr_list_t;

#define hr_list_entry(node, type, member) ((type *)((char *)(node)-offsetof(type, member)))

static inline void hr_list_init(hr_list_t *l);
static inline bool hr_list_empty(const hr_list_t *l);
static inline bool hr_list_linked(const hr_list_t *n);
static inline void hr_list_push_back(hr_list_t *head, hr_list_t *n);
static inline void hr_list_push_front(hr_list_t *head, hr_list_t *n);
static inline void hr_list_remove(hr_list_t *n);

/* inline definitions */

static inline void hr_list_init(hr_list_t *l)
{
    l->prev = l->next = l;
}

static inline bool hr_list_empty(const hr_list_t *l)
{
    return l->next == l;
}

static inline bool hr_list_linked(const hr_list_t *n)
{
    return n->next != n && n->next != NULL;
}

static inline void hr_list_push_back(hr_list_t *head, hr_list_t *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

/* Inserts n first: before the current first node. */
static inline void hr_list_push_front(hr_list_t *head, hr_list_t *n)
{
    hr_list_push_back(head->next, n);
}

static inline void hr_list_remove(hr_list_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

#endif
