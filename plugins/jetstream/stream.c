/*
 * stream.c - the JetStream stream that holds moonlog's journal: made when it is
 * not there, checked when it is.
 *
 * The journal must keep every entry for ever, in one order, on several
 * servers: a node that starts later, or with an empty folder, catches up from
 * its first message. So the stream takes one subject, stores to files, keeps
 * `replicas` copies, and has no limit that would drop a message (age, count,
 * bytes, per subject) nor allow deleting or purging one. A stream that differs
 * in any of these is refused, with what differs, rather than changed behind
 * the user's back.
 */
#include <stdio.h>
#include <string.h>

#include "jetstream.h"

/* How long the stream's first look-up may wait for JetStream (a leader being elected). */
#define LOOKUP_TRIES 20

static void make_config(struct js_writer *jw, jsStreamConfig *c, const char **subjects,
			int replicas)
{
	jsStreamConfig_Init(c);
	c->Name = jw->stream;
	c->Description = "moonlog's replicated log (docs/scale-out.md)";
	subjects[0] = jw->subject;
	c->Subjects = subjects;
	c->SubjectsLen = 1;
	c->Retention = js_LimitsPolicy;
	c->Storage = js_FileStorage;
	c->Replicas = replicas;
	c->MaxMsgs = -1, c->MaxBytes = -1, c->MaxAge = 0, c->MaxMsgsPerSubject = -1;
	c->DenyDelete = true, c->DenyPurge = true;
}

/* Appends to `out` what differs in the stream's config from what the journal needs. */
static void differences(struct js_writer *jw, const jsStreamConfig *c, int replicas,
			struct ml_buf *out)
{
#define DIFF(...) (ml_buf_addf(out, "%s", out->len ? "; " : ""), ml_buf_addf(out, __VA_ARGS__))
	if (c->SubjectsLen != 1 || strcmp(c->Subjects[0], jw->subject) != 0)
		DIFF("its subjects are not just '%s'", jw->subject);
	if (c->Storage != js_FileStorage)
		DIFF("it keeps messages in memory (needs file storage)");
	if (c->Replicas != replicas)
		DIFF("it keeps %lld copies (needs %d; see --replicate-replicas)",
		     (long long)c->Replicas, replicas);
	if (c->Retention != js_LimitsPolicy)
		DIFF("its retention is not 'limits' (work queue or interest drops messages)");
	if (c->MaxMsgs > 0 || c->MaxBytes > 0 || c->MaxAge > 0 || c->MaxMsgsPerSubject > 0)
		DIFF("it drops old messages (max msgs %lld, bytes %lld, age %llds, per "
		     "subject %lld; needs no limit)",
		     (long long)c->MaxMsgs, (long long)c->MaxBytes,
		     (long long)(c->MaxAge / 1000000000), (long long)c->MaxMsgsPerSubject);
	if (c->Sealed)
		DIFF("it is sealed");
	if (c->Mirror != NULL || c->SourcesLen > 0)
		DIFF("it is a mirror or has sources");
#undef DIFF
}

int js_stream_ensure(struct js_writer *jw, int replicas, uint64_t *last)
{
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s = NATS_TIMEOUT;
	for (int i = 0; i < LOOKUP_TRIES; i++) {
		s = js_GetStreamInfo(&si, jw->js, jw->stream, NULL, &jerr);
		if (s != NATS_TIMEOUT && s != NATS_NO_RESPONDERS)
			break;
		if (i == 0)
			js_log(jw, "JetStream does not answer yet (%s): waiting up to %d s",
			       natsStatus_GetText(s), LOOKUP_TRIES);
		nats_Sleep(1000);
	}
	if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
		jsStreamConfig c;
		const char *subjects[1];
		make_config(jw, &c, subjects, replicas);
		/* A cluster that just started may not know all its peers yet: try for a while. */
		for (int i = 0; i < LOOKUP_TRIES; i++) {
			jerr = 0;
			if ((s = js_AddStream(&si, jw->js, &c, NULL, &jerr)) == NATS_OK)
				break;
			if (i == 0)
				js_log(jw,
				       "JetStream did not make the stream %s yet (%s, error %d): "
				       "trying for %d s",
				       jw->stream, natsStatus_GetText(s), (int)jerr, LOOKUP_TRIES);
			nats_Sleep(1000);
		}
		if (s != NATS_OK)
			return ml_diag_set(
			    ML_ERR_REFUSED,
			    "JetStream refused to make the stream %s (%s, error %d): "
			    "with --replicate-replicas %d it needs that many servers "
			    "with JetStream enabled",
			    jw->stream, natsStatus_GetText(s), (int)jerr, replicas);
		js_log(jw, "made the JetStream stream %s (subject %s, %d copies, file storage)",
		       jw->stream, jw->subject, replicas);
	} else if (s != NATS_OK) {
		return ml_diag_set(ML_ERR_IO,
				   "JetStream did not tell about the stream %s (%s): is JetStream "
				   "enabled on the NATS servers, and do they have a leader?",
				   jw->stream, natsStatus_GetText(s));
	}
	struct ml_buf diff = {0};
	differences(jw, si->Config, replicas, &diff);
	*last = si->State.LastSeq;
	jsStreamInfo_Destroy(si);
	if (diff.len) {
		ml_diag_set(ML_ERR_REFUSED,
			    "the JetStream stream %s does not fit moonlog's journal: %.*s; fix it "
			    "with the nats tool, or name another stream with --replicate-stream",
			    jw->stream, (int)diff.len, (const char *)diff.data);
		ml_buf_free(&diff);
		return -1;
	}
	return 0;
}
