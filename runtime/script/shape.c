/*
 * shape.c - what a handler does with its event, read once from its bytecode.
 *
 * Two facts let the host feed a projection's handler for less, and both can be
 * read from the handler's own code (lua_dump, when the script loads):
 *
 * - Whether it can keep its event. A handler that only reads fields of the
 *   event, and of e.data and e.meta, by constant names (e.stream,
 *   e.data.amount), and hands the event, e.data and e.meta to nothing else (no
 *   call, no store, no return, no upvalue, no operator that could pass them to
 *   a metamethod), holds no reference to them once it returns. Such a handler
 *   is "plain": the host gives it the fields it reads, decoded, in tables it
 *   reuses from one event to the next (fold.c), instead of building a new view
 *   per event. It cannot tell the difference: a view and those tables answer
 *   the same names with the same values.
 * - Whether it runs straight through. A function without a backward jump runs
 *   each of its instructions at most once, so until it calls something it runs
 *   no more instructions than it has. Such a handler needs no count hook until
 *   it calls something (limits.c).
 *
 * The reading is flow-insensitive and conservative: a register that ever holds
 * the event (or e.data, e.meta) is treated as holding it everywhere, and any
 * instruction this file does not know, or any use of such a register it cannot
 * follow, makes the handler not plain. Lua 5.4's bytecode (lopcodes.h, the
 * dump format of ldump.c) is the same in every 5.4 release.
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "script_internal.h"

/* Lua 5.4's opcodes, in lopcodes.h's order. */
enum {
	OP_MOVE,
	OP_LOADI,
	OP_LOADF,
	OP_LOADK,
	OP_LOADKX,
	OP_LOADFALSE,
	OP_LFALSESKIP,
	OP_LOADTRUE,
	OP_LOADNIL,
	OP_GETUPVAL,
	OP_SETUPVAL,
	OP_GETTABUP,
	OP_GETTABLE,
	OP_GETI,
	OP_GETFIELD,
	OP_SETTABUP,
	OP_SETTABLE,
	OP_SETI,
	OP_SETFIELD,
	OP_NEWTABLE,
	OP_SELF,
	OP_ADDI,
	OP_ADDK,
	OP_SUBK,
	OP_MULK,
	OP_MODK,
	OP_POWK,
	OP_DIVK,
	OP_IDIVK,
	OP_BANDK,
	OP_BORK,
	OP_BXORK,
	OP_SHRI,
	OP_SHLI,
	OP_ADD,
	OP_SUB,
	OP_MUL,
	OP_MOD,
	OP_POW,
	OP_DIV,
	OP_IDIV,
	OP_BAND,
	OP_BOR,
	OP_BXOR,
	OP_SHL,
	OP_SHR,
	OP_MMBIN,
	OP_MMBINI,
	OP_MMBINK,
	OP_UNM,
	OP_BNOT,
	OP_NOT,
	OP_LEN,
	OP_CONCAT,
	OP_CLOSE,
	OP_TBC,
	OP_JMP,
	OP_EQ,
	OP_LT,
	OP_LE,
	OP_EQK,
	OP_EQI,
	OP_LTI,
	OP_LEI,
	OP_GTI,
	OP_GEI,
	OP_TEST,
	OP_TESTSET,
	OP_CALL,
	OP_TAILCALL,
	OP_RETURN,
	OP_RETURN0,
	OP_RETURN1,
	OP_FORLOOP,
	OP_FORPREP,
	OP_TFORPREP,
	OP_TFORCALL,
	OP_TFORLOOP,
	OP_SETLIST,
	OP_CLOSURE,
	OP_VARARG,
	OP_VARARGPREP,
	OP_EXTRAARG,
};

#define GET_OP(i) ((int)((i)&0x7f))
#define GET_A(i)  ((int)(((i) >> 7) & 0xff))
#define GET_K(i)  ((int)(((i) >> 15) & 1))
#define GET_B(i)  ((int)(((i) >> 16) & 0xff))
#define GET_C(i)  ((int)(((i) >> 24) & 0xff))
#define GET_SJ(i) ((int32_t)((i) >> 7) - 0xffffff)

#define MAX_REGS 256

/* ---- the dump ---- */

struct reader {
	const uint8_t *p, *end;
	int bad;
};

static uint8_t get_byte(struct reader *r)
{
	if (r->p >= r->end) {
		r->bad = 1;
		return 0;
	}
	return *r->p++;
}

/* ldump.c's dumpSize: 7 bits a byte, most significant first, the last one marked. */
static size_t get_size(struct reader *r)
{
	size_t x = 0;
	for (int n = 0; n < 10; n++) {
		uint8_t b = get_byte(r);
		x = (x << 7) | (b & 0x7f);
		if (b & 0x80)
			return x;
	}
	r->bad = 1;
	return 0;
}

static const uint8_t *get_bytes(struct reader *r, size_t n)
{
	if ((size_t)(r->end - r->p) < n) {
		r->bad = 1;
		r->p = r->end;
		return NULL;
	}
	const uint8_t *at = r->p;
	r->p += n;
	return at;
}

/* A string: its bytes (NULL for none) and length. */
static const uint8_t *get_string(struct reader *r, size_t *len)
{
	size_t n = get_size(r);
	*len = n ? n - 1 : 0;
	return n ? get_bytes(r, n - 1) : NULL;
}

/* One function of the dump, as far as the analysis needs it. */
struct proto {
	int numparams, is_vararg, maxstack;
	size_t ncode, nk, nup, np;
	const uint8_t *code;
	struct konst {
		const uint8_t *str; /* a string constant, else NULL */
		size_t len;
	} * k;
	const uint8_t *up; /* nup triples: instack, idx, kind */
	struct proto *p;   /* np nested functions */
};

static void proto_free(struct proto *f)
{
	for (size_t i = 0; f->p && i < f->np; i++)
		proto_free(&f->p[i]);
	free(f->p);
	free(f->k);
}

static void get_proto(struct reader *r, struct proto *f, int depth)
{
	size_t n;
	memset(f, 0, sizeof(*f));
	if (depth > 200) {
		r->bad = 1;
		return;
	}
	get_string(r, &n); /* source */
	get_size(r);	   /* linedefined, lastlinedefined */
	get_size(r);
	f->numparams = get_byte(r);
	f->is_vararg = get_byte(r);
	f->maxstack = get_byte(r);
	f->ncode = get_size(r);
	f->code = get_bytes(r, f->ncode * 4);
	f->nk = get_size(r);
	if (r->bad || f->nk > (size_t)(r->end - r->p))
		return (void)(r->bad = 1);
	f->k = ml_xcalloc(f->nk ? f->nk : 1, sizeof(*f->k));
	for (size_t i = 0; i < f->nk && !r->bad; i++) {
		switch (get_byte(r)) {
		case 0x03: /* LUA_VNUMINT */
		case 0x13: /* LUA_VNUMFLT */
			get_bytes(r, 8);
			break;
		case 0x04: /* LUA_VSHRSTR */
		case 0x14: /* LUA_VLNGSTR */
			f->k[i].str = get_string(r, &f->k[i].len);
			break;
		default: /* nil, false, true: the tag alone */
			break;
		}
	}
	f->nup = get_size(r);
	f->up = get_bytes(r, f->nup * 3);
	f->np = get_size(r);
	if (r->bad || f->np > (size_t)(r->end - r->p))
		return (void)(r->bad = 1);
	f->p = ml_xcalloc(f->np ? f->np : 1, sizeof(*f->p));
	for (size_t i = 0; i < f->np && !r->bad; i++)
		get_proto(r, &f->p[i], depth + 1);
	/* debug information: stripped, four zero counts */
	for (int i = 0; i < 4; i++)
		if (get_size(r) != 0)
			r->bad = 1;
}

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud)
{
	(void)L;
	ml_buf_add(ud, p, n);
	return 0;
}

/* ---- the analysis ---- */

/*
 * A forward pass over the function's flow: for each instruction, which
 * registers may hold the event (T_EVENT), e.data (T_DATA) or e.meta (T_META)
 * when it runs. Then each instruction is checked against those: reading a
 * field by a constant name from such a register is followed (and the name
 * noted), copying it to another register is followed, and anything else done
 * with it makes the handler not plain.
 */
enum { T_EVENT = 1, T_DATA = 2, T_META = 4 };

/* Beyond this many instructions a handler is not looked at (it keeps the view). */
#define MAX_CODE 4096

static const char *const event_fields[] = {"position", "version", "time", "stream",
					   "type",     "id",	  "data", "meta"};

struct walk {
	const struct proto *f;
	int nregs;
	uint8_t *in;	/* ncode states of nregs registers */
	uint8_t *seen;	/* the instruction is reachable */
	uint32_t *todo; /* a stack of instructions to look at again */
	size_t ntodo;
	uint8_t *cur; /* the state being carried out of one instruction */
	struct ml_shape *out;
};

static uint32_t code_at(const struct proto *f, size_t pc)
{
	uint32_t i;
	memcpy(&i, f->code + 4 * pc, 4);
	return i;
}

/* Which event field the string constant c is (0..7), or -1. */
static int field_of(const struct proto *f, int c)
{
	const struct konst *k = (size_t)c < f->nk ? &f->k[c] : NULL;
	for (int i = 0; k && k->str && i < 8; i++)
		if (strlen(event_fields[i]) == k->len &&
		    memcmp(event_fields[i], k->str, k->len) == 0)
			return i;
	return -1;
}

static void set(struct walk *w, int r, uint8_t t)
{
	if (r >= 0 && r < w->nregs)
		w->cur[r] = t;
}

static uint8_t at(const struct walk *w, int r)
{
	return r >= 0 && r < w->nregs ? w->cur[r] : 0;
}

/* Carries the state w->cur into instruction pc. */
static void flow_to(struct walk *w, size_t pc)
{
	if (pc >= w->f->ncode)
		return;
	uint8_t *in = w->in + pc * (size_t)w->nregs;
	int grew = !w->seen[pc];
	for (int r = 0; r < w->nregs; r++) {
		if ((in[r] | w->cur[r]) != in[r])
			grew = 1;
		in[r] |= w->cur[r];
	}
	w->seen[pc] |= 1;
	if (grew && !(w->seen[pc] & 2)) { /* (not in the stack already) */
		w->seen[pc] |= 2;
		w->todo[w->ntodo++] = (uint32_t)pc;
	}
}

/* What instruction pc writes, given the state before it, and where control goes next. */
static void transfer(struct walk *w, size_t pc)
{
	uint32_t i = code_at(w->f, pc);
	int a = GET_A(i), b = GET_B(i), c = GET_C(i);
	memcpy(w->cur, w->in + pc * (size_t)w->nregs, (size_t)w->nregs);
	switch (GET_OP(i)) {
	case OP_MOVE:
		set(w, a, at(w, b));
		break;
	case OP_TESTSET: /* (on the path that assigns; the other keeps both) */
		set(w, a, at(w, a) | at(w, b));
		flow_to(w, pc + 2);
		break;
	case OP_GETFIELD: {
		int field = at(w, b) & T_EVENT ? field_of(w->f, c) : -1;
		set(w, a, field == 6 ? T_DATA : field == 7 ? T_META : 0);
		break;
	}
	case OP_SELF:
		set(w, a + 1, at(w, b));
		set(w, a, 0);
		break;
	case OP_LOADNIL:
		for (int r = a; r <= a + b; r++)
			set(w, r, 0);
		break;
	case OP_CALL:
	case OP_VARARG:
		for (int r = a; c >= 2 && r <= a + c - 2; r++)
			set(w, r, 0);
		break;
	case OP_TFORCALL:
		for (int r = a + 4; r <= a + 3 + c; r++)
			set(w, r, 0);
		break;
	case OP_LOADI:
	case OP_LOADF:
	case OP_LOADK:
	case OP_LOADKX:
	case OP_LOADFALSE:
	case OP_LOADTRUE:
	case OP_GETUPVAL:
	case OP_GETTABUP:
	case OP_GETTABLE:
	case OP_GETI:
	case OP_NEWTABLE:
	case OP_UNM:
	case OP_BNOT:
	case OP_NOT:
	case OP_LEN:
	case OP_CONCAT:
	case OP_CLOSURE:
		set(w, a, 0);
		break;
	case OP_ADDI:
	case OP_ADDK:
	case OP_SUBK:
	case OP_MULK:
	case OP_MODK:
	case OP_POWK:
	case OP_DIVK:
	case OP_IDIVK:
	case OP_BANDK:
	case OP_BORK:
	case OP_BXORK:
	case OP_SHRI:
	case OP_SHLI:
	case OP_ADD:
	case OP_SUB:
	case OP_MUL:
	case OP_MOD:
	case OP_POW:
	case OP_DIV:
	case OP_IDIV:
	case OP_BAND:
	case OP_BOR:
	case OP_BXOR:
	case OP_SHL:
	case OP_SHR: /* a result, then the metamethod's call, skipped when not needed */
		set(w, a, 0);
		flow_to(w, pc + 2);
		break;
	case OP_LFALSESKIP:
		set(w, a, 0);
		flow_to(w, pc + 2);
		return;
	case OP_EQ:
	case OP_LT:
	case OP_LE:
	case OP_EQK:
	case OP_EQI:
	case OP_LTI:
	case OP_LEI:
	case OP_GTI:
	case OP_GEI:
	case OP_TEST: /* skip the next instruction, or not */
		flow_to(w, pc + 2);
		break;
	case OP_JMP:
		flow_to(w, pc + 1 + (size_t)GET_SJ(i));
		return;
	case OP_FORPREP:
	case OP_FORLOOP:
		for (int r = a; r <= a + 3; r++)
			set(w, r, 0);
		if (GET_OP(i) == OP_FORPREP)
			flow_to(w, pc + (i >> 15) + 2);
		else
			flow_to(w, pc + 1 - (i >> 15));
		break;
	case OP_TFORPREP:
		flow_to(w, pc + 1 + (i >> 15));
		return;
	case OP_TFORLOOP:
		set(w, a + 2, at(w, a + 4));
		flow_to(w, pc + 1 - (i >> 15));
		break;
	case OP_TAILCALL:
	case OP_RETURN:
	case OP_RETURN0:
	case OP_RETURN1:
		return;
	default: /* writes no register */
		break;
	}
	flow_to(w, pc + 1);
}

/* A register that may hold the event (or e.data, e.meta) is used in a way not followed. */
static void use(struct walk *w, int r)
{
	if (at(w, r))
		w->out->plain = 0;
}

static void use_range(struct walk *w, int from, int n)
{
	for (int r = from; r < w->nregs && (n < 0 || r < from + n); r++)
		use(w, r);
}

static void add_key(struct ml_shape *out, int which, const uint8_t *k, size_t n)
{
	char ***keys = which == T_DATA ? &out->data_keys : &out->meta_keys;
	size_t *count = which == T_DATA ? &out->n_data : &out->n_meta;
	for (size_t i = 0; i < *count; i++)
		if (strlen((*keys)[i]) == n && memcmp((*keys)[i], k, n) == 0)
			return;
	if (*count >= ML_SHAPE_MAX_KEYS || memchr(k, 0, n)) {
		out->plain = 0;
		return;
	}
	*keys = ml_xrealloc(*keys, (*count + 1) * sizeof(**keys));
	(*keys)[(*count)++] = ml_xstrndup((const char *)k, n);
}

/* R[A] := R[B][K[C]]: a field read by name, noted. */
static void get_field(struct walk *w, int b, int c)
{
	const struct konst *k = (size_t)c < w->f->nk ? &w->f->k[c] : NULL;
	uint8_t t = at(w, b);
	if (!t)
		return;
	if (k == NULL || k->str == NULL) {
		w->out->plain = 0;
		return;
	}
	int field = field_of(w->f, c);
	if ((t & T_EVENT) && field >= 0)
		w->out->fields |= 1u << field;
	if (t & T_DATA)
		add_key(w->out, T_DATA, k->str, k->len);
	if (t & T_META)
		add_key(w->out, T_META, k->str, k->len);
}

/* Checks what instruction pc does with the registers it reads, in the state before it. */
static void check(struct walk *w, size_t pc)
{
	uint32_t i = code_at(w->f, pc);
	int a = GET_A(i), b = GET_B(i), c = GET_C(i), k = GET_K(i);
	memcpy(w->cur, w->in + pc * (size_t)w->nregs, (size_t)w->nregs);
	switch (GET_OP(i)) {
	case OP_GETFIELD:
		get_field(w, b, c);
		return;
	case OP_MOVE:
	case OP_TESTSET:
	case OP_LOADI:
	case OP_LOADF:
	case OP_LOADK:
	case OP_LOADKX:
	case OP_LOADFALSE:
	case OP_LFALSESKIP:
	case OP_LOADTRUE:
	case OP_LOADNIL:
	case OP_GETUPVAL:
	case OP_GETTABUP:
	case OP_NEWTABLE:
	case OP_NOT:
	case OP_CLOSE:
	case OP_EQK:
	case OP_EQI:
	case OP_TEST:
	case OP_RETURN0:
	case OP_VARARG:
	case OP_VARARGPREP:
	case OP_EXTRAARG:
	case OP_JMP:
		return;
	case OP_SETUPVAL:
	case OP_TBC:
	case OP_RETURN1:
	case OP_MMBINI:
	case OP_MMBINK:
	case OP_LTI:
	case OP_LEI:
	case OP_GTI:
	case OP_GEI:
		use(w, a);
		return;
	case OP_GETTABLE: /* a key that is not a constant name */
		use(w, b);
		use(w, c);
		return;
	case OP_GETI:
	case OP_ADDI:
	case OP_ADDK:
	case OP_SUBK:
	case OP_MULK:
	case OP_MODK:
	case OP_POWK:
	case OP_DIVK:
	case OP_IDIVK:
	case OP_BANDK:
	case OP_BORK:
	case OP_BXORK:
	case OP_SHRI:
	case OP_SHLI:
	case OP_UNM:
	case OP_BNOT:
	case OP_LEN:
		use(w, b);
		return;
	case OP_SETTABUP:
		if (!k)
			use(w, c);
		return;
	case OP_SETTABLE: /* a view raises on a write; the tables would take it */
		use(w, a);
		use(w, b);
		if (!k)
			use(w, c);
		return;
	case OP_SETI:
	case OP_SETFIELD:
		use(w, a);
		if (!k)
			use(w, c);
		return;
	case OP_SELF:
		use(w, b);
		if (!k)
			use(w, c);
		return;
	case OP_ADD:
	case OP_SUB:
	case OP_MUL:
	case OP_MOD:
	case OP_POW:
	case OP_DIV:
	case OP_IDIV:
	case OP_BAND:
	case OP_BOR:
	case OP_BXOR:
	case OP_SHL:
	case OP_SHR:
		use(w, b);
		use(w, c);
		return;
	case OP_MMBIN:
	case OP_EQ:
	case OP_LT:
	case OP_LE:
		use(w, a);
		use(w, b);
		return;
	case OP_CONCAT:
		use_range(w, a, b);
		return;
	case OP_CALL:
	case OP_TAILCALL:
		use_range(w, a, b ? b : -1); /* B = 0: up to the top */
		return;
	case OP_RETURN:
		use_range(w, a, b ? b - 1 : -1);
		return;
	case OP_FORLOOP:
	case OP_FORPREP:
	case OP_TFORPREP:
	case OP_TFORCALL:
	case OP_TFORLOOP:
		use_range(w, a, 5);
		return;
	case OP_SETLIST:
		use(w, a);
		use_range(w, a + 1, b ? b : -1);
		return;
	case OP_CLOSURE: {
		uint32_t bx = i >> 15;
		const struct proto *p = bx < w->f->np ? &w->f->p[bx] : NULL;
		for (size_t u = 0; p && u < p->nup; u++)
			if (p->up[3 * u]) /* instack: captures register idx */
				use(w, p->up[3 * u + 1]);
		if (p == NULL)
			w->out->plain = 0;
		return;
	}
	default: /* not a 5.4 opcode this file knows */
		w->out->plain = 0;
	}
}

/* Straight: no backward jump, no loop, no opcode this file does not know. */
static int straight(const struct proto *f)
{
	for (size_t pc = 0; pc < f->ncode; pc++) {
		uint32_t i = code_at(f, pc);
		int op = GET_OP(i);
		if ((op == OP_JMP && GET_SJ(i) < 0) || op == OP_FORLOOP || op == OP_FORPREP ||
		    op == OP_TFORPREP || op == OP_TFORCALL || op == OP_TFORLOOP || op > OP_EXTRAARG)
			return 0;
	}
	return 1;
}

static void analyse(const struct proto *f, struct ml_shape *out)
{
	out->length = (uint32_t)f->ncode;
	out->takes_event = f->numparams >= 2 || f->is_vararg;
	out->straight = straight(f);
	/* The event arrives in register 1; in a vararg function without a second
	 * parameter it arrives among the varargs, where this does not follow it. */
	out->plain = f->numparams >= 2 && f->ncode <= MAX_CODE && f->maxstack > 1;
	if (!out->plain)
		return;
	struct walk w = {.f = f, .nregs = f->maxstack, .out = out};
	w.in = ml_xcalloc(f->ncode, (size_t)w.nregs);
	w.seen = ml_xcalloc(f->ncode, 1);
	w.todo = ml_xcalloc(f->ncode, sizeof(*w.todo));
	w.cur = ml_xcalloc((size_t)w.nregs, 1);
	w.cur[1] = T_EVENT;
	flow_to(&w, 0);
	while (w.ntodo > 0) {
		size_t pc = w.todo[--w.ntodo];
		w.seen[pc] &= 1;
		transfer(&w, pc);
	}
	for (size_t pc = 0; pc < f->ncode; pc++)
		if (w.seen[pc])
			check(&w, pc);
	free(w.in);
	free(w.seen);
	free(w.todo);
	free(w.cur);
	if (!out->plain) {
		out->fields = 0;
		ml_shape_clear_keys(out);
	}
}

void ml_shape_clear_keys(struct ml_shape *s)
{
	for (size_t i = 0; i < s->n_data; i++)
		free(s->data_keys[i]);
	for (size_t i = 0; i < s->n_meta; i++)
		free(s->meta_keys[i]);
	free(s->data_keys);
	free(s->meta_keys);
	s->data_keys = s->meta_keys = NULL;
	s->n_data = s->n_meta = 0;
}

int ml_shape_read(lua_State *L, int fn, struct ml_shape *out)
{
	static const uint8_t header[] = {0x1b, 'L',  'u',  'a',	 0x54, 0, 0x19, 0x93,
					 '\r', '\n', 0x1a, '\n', 4,    8, 8};
	struct ml_buf b = {0};
	memset(out, 0, sizeof(*out));
	out->takes_event = 1;
	if (lua_type(L, fn) != LUA_TFUNCTION || lua_iscfunction(L, fn))
		return -1;
	lua_pushvalue(L, fn);
	int rc = lua_dump(L, dump_writer, &b, 1);
	lua_pop(L, 1);
	/* the header, then two numbers that say how integers and floats are stored */
	size_t head = sizeof(header) + 8 + 8 + 1;
	if (rc != 0 || b.len < head || memcmp(b.data, header, sizeof(header)) != 0) {
		ml_buf_free(&b);
		return -1;
	}
	struct reader r = {(const uint8_t *)b.data + head, (const uint8_t *)b.data + b.len, 0};
	struct proto f;
	get_proto(&r, &f, 0);
	if (!r.bad && r.p == r.end)
		analyse(&f, out);
	proto_free(&f);
	ml_buf_free(&b);
	if (r.bad || out->length == 0) {
		ml_shape_clear_keys(out);
		memset(out, 0, sizeof(*out));
		out->takes_event = 1;
		return -1;
	}
	return 0;
}
