/*
 * The JetStream plugin's queue of published batches waiting for their apply
 * (plugins/jetstream/waiting.c): taken in token order from the front, a copy's
 * older token finds nothing, a batch whose write failed goes back in its
 * place, and the queue takes new batches after any of these.
 */
#include <stdlib.h>

#include "test/unit.h"
#include "waiting.h"

static struct js_pending *batch(uint64_t token)
{
	struct js_pending *p = calloc(1, sizeof(*p));
	p->token = token;
	return p;
}

/* The tokens in the queue, front first, as "1 2 3". */
static const char *tokens(const struct js_waiting *q)
{
	static char out[256];
	size_t n = 0;
	out[0] = '\0';
	for (const struct js_pending *p = q->head; p && n < sizeof(out) - 24; p = p->next)
		n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%llu", n ? " " : "",
				      (unsigned long long)p->token);
	return out;
}

static uint64_t take(struct js_waiting *q, uint64_t token)
{
	struct js_pending *p = js_waiting_take(q, token);
	uint64_t got = p ? p->token : 0;
	free(p);
	return got;
}

int main(void)
{
	struct js_waiting q;
	js_waiting_init(&q);
	for (uint64_t t = 1; t <= 5; t++)
		js_waiting_push(&q, batch(t));
	is_str(tokens(&q), "1 2 3 4 5", "published batches wait in token order");
	is_int(take(&q, 1), 1, "the apply of the oldest takes the front");
	is_int(take(&q, 1), 0, "a copy of a message sent again finds its batch gone");
	is_int(take(&q, 99), 0, "a token never published finds nothing");
	is_str(tokens(&q), "2 3 4 5", "and takes nothing");

	/* 2 and 3 are applied, their write fails: put back (in either order) before 4 */
	struct js_pending *b2 = js_waiting_take(&q, 2), *b3 = js_waiting_take(&q, 3);
	js_waiting_put_back(&q, b3);
	js_waiting_put_back(&q, b2);
	is_str(tokens(&q), "2 3 4 5", "batches whose write failed go back in their place");

	/* the last one taken, then a new one published: the end follows */
	is_int(take(&q, 2), 2, "applied again: taken again");
	is_int(take(&q, 3), 3, "in order");
	is_int(take(&q, 4), 4, "and on");
	is_int(take(&q, 5), 5, "to the last");
	is_str(tokens(&q), "", "the queue is empty");
	js_waiting_push(&q, batch(6));
	is_str(tokens(&q), "6", "a batch published after the last was taken is found");
	struct js_pending *b6 = js_waiting_take(&q, 6);
	js_waiting_put_back(&q, b6);
	js_waiting_push(&q, batch(7));
	is_str(tokens(&q), "6 7", "and after one put back into an empty queue");

	/* taken out of order (an entry that never came back): still found, and the end kept */
	is_int(take(&q, 7), 7, "a batch behind an older one is found");
	js_waiting_push(&q, batch(8));
	is_str(tokens(&q), "6 8", "the queue goes on after it");

	struct js_pending *all = js_waiting_take_all(&q);
	is_str(tokens(&q), "", "take_all empties the queue");
	int n = 0;
	for (struct js_pending *next; all; all = next, n++) {
		next = all->next;
		free(all);
	}
	is_int(n, 2, "and hands over every batch");

	/* Thousands waiting, as 64 connections x 32 in flight keep: each apply takes the
	 * front (a walk per apply would make this run quadratic: 10^10 steps). */
	enum { MANY = 200000 };
	for (uint64_t t = 1; t <= MANY; t++)
		js_waiting_push(&q, batch(t));
	uint64_t in_order = 0;
	for (uint64_t t = 1; t <= MANY; t++)
		in_order += take(&q, t) == t;
	is_int(in_order, MANY, "200,000 batches, each taken in order by its apply");
	ok(q.head == NULL, "none left");
	return done_testing();
}
