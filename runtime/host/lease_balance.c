/*
 * lease_balance.c - spreads the handlers' leases (lease.c) over the nodes that
 * share the log, so that each node runs about its share of them instead of the
 * first node that looked running them all.
 *
 * Only a node that has a handler loaded can run it, and only that node knows it
 * has, so the node that runs fewer is the one that acts: every LEASE_EVEN_MS at
 * most, a node that runs k handlers takes one lease over from a live node that
 * it sees running k + 2 or more of the handlers loaded here (it reads their
 * $lease-NAME streams while it stands by). It appends Acquired {node, from}
 * with the version it read, as any takeover does: the old holder is fenced (its
 * batches ordered after that Acquired are refused, and it sees the Acquired in
 * its own log within LEASE_LOOK_MS), drops what it handled since its last
 * stored batch and stands by; the new holder runs the handler from the
 * checkpoint, so each event is still handled once. The old holder keeps
 * nothing it would have to hand over, so nothing waits for it to answer.
 *
 * Why it settles, and never ping-pongs: a move from a node that runs a >= k + 2
 * to one that runs k leaves them at a - 1 and k + 1, so the sum over the nodes
 * of the square of the leases each runs falls by 2(a - k - 1) >= 2 at every
 * move. A node counts another's leases over the handlers loaded here only,
 * which is at most what that node runs, so this holds whatever scripts each
 * node has; a node without a script never takes its lease, so it moves
 * nothing. The old holder never takes the lease straight back (it runs
 * a - 1 >= k + 1 now). With the same scripts on every node the nodes end at
 * most one apart: each runs the floor or the ceiling of handlers / nodes.
 * (Counts are as of this node's log, a little behind; a lease that moved
 * meanwhile makes the Acquired lose on its expected version.)
 */
#include <stdio.h>
#include <string.h>

#include "host/host_internal.h"

#define LEASE_EVEN_MS 1000 /* a node takes at most one lease over this often */
#define LEASE_LOOK_MS 100  /* and counts this often */

int ml_lease_held_here(struct ml_host *h)
{
	int n = 0;
	for (size_t i = 0; i < h->n; i++) {
		enum ml_lease_state st = h->v[i]->lease.state;
		n += st == ML_LEASE_HELD || st == ML_LEASE_TAKING;
	}
	return n;
}

/* How many of the handlers loaded here `node` runs, as last read. */
static int held_by(struct ml_host *h, const char *node)
{
	int n = 0;
	for (size_t i = 0; i < h->n; i++) {
		const struct ml_lease *l = &h->v[i]->lease;
		n += l->state == ML_LEASE_STANDBY && !l->released && strcmp(l->holder, node) == 0;
	}
	return n;
}

/* A lease this node may take over from its holder: standing by behind another node known to
 * be alive, with the script loaded and not faulted here (a faulted copy runs nowhere). */
static int movable(struct ml_host *h, const struct ml_hosted *e)
{
	const struct ml_lease *l = &e->lease;
	return l->state == ML_LEASE_STANDBY && e->s && !e->removed && !e->error &&
	       !ml_script_fault(e->s) && l->seen != UINT64_MAX && l->seen > 0 && !l->released &&
	       l->holder[0] && strcmp(l->holder, ml_log_node(h->log)) != 0 &&
	       ml_log_node_state(h->log, l->holder, strlen(l->holder)) == ML_NODE_ALIVE;
}

void ml_lease_balance(struct ml_host *h, uint64_t now)
{
	if (ml_log_node(h->log) == NULL || now < h->even_ms)
		return;
	if (h->even_ms == 0) { /* just opened: free leases go first */
		h->even_ms = now + LEASE_EVEN_MS;
		return;
	}
	h->even_ms = now + LEASE_LOOK_MS;
	for (size_t i = 0; i < h->n; i++)
		if (h->v[i]->lease.state == ML_LEASE_TAKING) /* counts in motion: after it */
			return;
	int mine = ml_lease_held_here(h), most = mine + 1;
	struct ml_hosted *pick = NULL;
	for (size_t i = 0; i < h->n; i++) {
		struct ml_hosted *e = h->v[i];
		int c = movable(h, e) ? held_by(h, e->lease.holder) : 0;
		if (c > most)
			most = c, pick = e;
	}
	if (pick == NULL)
		return;
	struct ml_lease *l = &pick->lease;
	char from[sizeof(l->holder)];
	snprintf(from, sizeof(from), "%s", l->holder);
	snprintf(l->why, sizeof(l->why),
		 "taken over from node %.64s, which ran %d of the handlers loaded here while "
		 "this node ran %d, to even them out",
		 from, most, mine);
	ml_lease_take(h, pick, from);
	h->even_ms = now + LEASE_EVEN_MS;
}
