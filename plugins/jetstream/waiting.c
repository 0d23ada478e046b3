/*
 * waiting.c - the published batches waiting for their apply (waiting.h): a
 * queue in token order, taken from the front.
 */
#include <stddef.h>

#include "waiting.h"

void js_waiting_init(struct js_waiting *q)
{
	q->head = NULL;
	q->end = &q->head;
}

void js_waiting_push(struct js_waiting *q, struct js_pending *p)
{
	p->next = NULL;
	*q->end = p;
	q->end = &p->next;
}

/*
 * The link to the first batch whose token is not older than `token`. The front
 * one, unless a batch older than `token` was never applied, which the stream's
 * order rules out: the walk is for correctness, not for speed.
 */
static struct js_pending **link_to(struct js_waiting *q, uint64_t token)
{
	struct js_pending **pp = &q->head;
	while (*pp && (*pp)->token < token)
		pp = &(*pp)->next;
	return pp;
}

struct js_pending *js_waiting_take(struct js_waiting *q, uint64_t token)
{
	struct js_pending **pp = link_to(q, token), *p = *pp;
	if (p == NULL || p->token != token)
		return NULL;
	*pp = p->next;
	if (q->end == &p->next)
		q->end = pp;
	p->next = NULL;
	return p;
}

void js_waiting_put_back(struct js_waiting *q, struct js_pending *p)
{
	struct js_pending **pp = link_to(q, p->token);
	p->next = *pp;
	*pp = p;
	if (p->next == NULL)
		q->end = &p->next;
}

struct js_pending *js_waiting_take_all(struct js_waiting *q)
{
	struct js_pending *all = q->head;
	js_waiting_init(q);
	return all;
}
