/*
 * libspool: the C client and worker runtime for spool (and any server that
 * speaks the Faktory work protocol, FWP).
 *
 * Three opaque objects:
 *
 *   spool_client  one connection to the server. Producer calls (push, info,
 *                 queue admin) and the low-level worker verbs (fetch, ack,
 *                 fail, beat) run on it. Blocking, with a timeout per read
 *                 and write. NOT thread-safe: use one client per thread, or
 *                 serialise calls yourself.
 *   spool_job     a job: either built by the producer (spool_job_new and the
 *                 setters) or received from FETCH (getters). A job is used by
 *                 one thread at a time.
 *   spool_worker  the worker runtime: N threads, each with its own
 *                 connection, fetching from a list of queues and running a
 *                 handler per jobtype, plus a heartbeat connection.
 *
 * Errors. Every call that can fail returns an int: 0 (or a documented
 * non-negative value) on success, a negative code otherwise: -errno for
 * system errors (-ECONNREFUSED, -ETIMEDOUT, -ENOMEM, ...) or one of the
 * SPOOL_E* codes below. spool_strerror() names any of them. When the server
 * answers -ERR, the call returns SPOOL_ESERVER and spool_client_error()
 * holds the server's text ("ERR Invalid password", ...).
 *
 * The library never aborts the host program and never calls exit(): out of
 * memory is reported as -ENOMEM. It never installs signal handlers unless
 * asked to (spool_worker_install_signals). It ignores SIGPIPE on its own
 * sockets (MSG_NOSIGNAL), it does not change the process disposition.
 *
 * Strings returned through a `char **` out-parameter are allocated by the
 * library and owned by the caller; release them with spool_free(). Strings
 * returned as `const char *` are borrowed from the object they came from and
 * live as long as it does (or until the next call on it, where stated).
 */
#ifndef SPOOL_SPOOL_H
#define SPOOL_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPOOL_VERSION_MAJOR 0
#define SPOOL_VERSION_MINOR 1
#define SPOOL_VERSION_PATCH 0

/* "0.1.0": the library's version. */
const char *spool_version(void);

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/* X(name, value, text). Values stay below -1000 so they never collide with
 * -errno. New codes are only ever appended. */
#define SPOOL_ERRORS(X)                                                              \
    X(SPOOL_EURL, -1001, "bad URL")                                                  \
    X(SPOOL_ETLS, -1002, "TLS error")                                                \
    X(SPOOL_ESERVER, -1003, "the server replied with an error")                      \
    X(SPOOL_EPROTO, -1004, "protocol error: unexpected reply from the server")       \
    X(SPOOL_EAUTH, -1005, "authentication failed")                                   \
    X(SPOOL_ECLOSED, -1006, "connection closed by the server")                       \
    X(SPOOL_EJSON, -1007, "invalid JSON")                                            \
    X(SPOOL_EARG, -1008, "invalid argument")                                         \
    X(SPOOL_ETOOBIG, -1009, "reply or request too large")                            \
    X(SPOOL_ENOTCONN, -1010, "not connected")                                        \
    X(SPOOL_EBUSY, -1011, "worker is already running")                               \
    X(SPOOL_ENOHANDLER, -1012, "no handler registered for this jobtype")             \
    X(SPOOL_ETIME, -1013, "invalid time")

enum spool_error {
#define SPOOL_ERR_ENUM_(name, value, text) name = value,
    SPOOL_ERRORS(SPOOL_ERR_ENUM_)
#undef SPOOL_ERR_ENUM_
};

/* A static, human-readable text for any return code: 0, a SPOOL_E* code or
 * a negative errno. Never NULL. Thread-safe. */
const char *spool_strerror(int err);

/* Releases a string or buffer the library handed over through `char **`.
 * NULL is fine. */
void spool_free(void *p);

/* ------------------------------------------------------------------------ */
/* URLs                                                                      */
/* ------------------------------------------------------------------------ */

/* A parsed server URL: tcp://[[user]:password@]host[:port], port defaults to
 * 7419, host may be an IPv6 literal in brackets. tcp+tls:// sets is_tls: the
 * connection then speaks TLS (1.2 or later) and checks the server's
 * certificate against host. */
typedef struct spool_url {
    char host[256];
    int port;
    char password[512]; /* "" when none */
    int is_tls;
} spool_url;

/* Parses `url` into *out. url NULL or "" means the default: env SPOOL_URL,
 * else FAKTORY_URL, else "tcp://localhost:7419". Returns 0 or SPOOL_EURL /
 * SPOOL_EARG; the reason ("missing host", "port out of range", ...) is then
 * in spool_client_error(NULL) for this thread. Does no I/O. Thread-safe. */
int spool_url_parse(const char *url, spool_url *out);

/* ------------------------------------------------------------------------ */
/* Client (one connection)                                                   */
/* ------------------------------------------------------------------------ */

typedef struct spool_client spool_client;

typedef struct spool_client_options {
    const char *url;              /* NULL: env SPOOL_URL / FAKTORY_URL / default */
    const char *wid;              /* NULL or "": a producer connection, no process record */
    const char *hostname;         /* NULL: gethostname() (sent with a wid only) */
    const char *const *labels;    /* sent with a wid only */
    size_t nlabels;
    int timeout_ms;               /* per connect/read/write; 0: 10000 */
    /* tcp+tls:// only. The server's certificate must chain to a CA in this
     * PEM file; NULL: env SPOOL_TLS_CA, else the system's CAs. */
    const char *tls_ca_file;
    /* INSECURE, for tests and development: non-zero (or env
     * SPOOL_TLS_INSECURE_SKIP_VERIFY=1) accepts any certificate for any
     * name, so anyone on the path can read and change the traffic. */
    int tls_insecure_skip_verify;
} spool_client_options;

/* Connects to `url` (NULL: the default, see spool_url_parse) and does the
 * HI/HELLO handshake, including the password hash when the server asks for
 * one. On success *out is a new client owned by the caller (spool_client_free)
 * and 0 is returned. On failure *out is NULL and the return is a negative
 * code; the reason (with the server's text, e.g. "ERR Invalid password",
 * which returns SPOOL_EAUTH) is in spool_client_error(NULL) on this thread.
 * Blocks up to the timeout per step. Thread-safe (touches no shared state). */
int spool_client_connect(const char *url, spool_client **out);

/* As spool_client_connect, with options; opts NULL means all defaults. A
 * non-empty wid registers the connection as part of a worker process (HELLO
 * gets wid, hostname, pid, labels, v=2) so spool_beat works on it. */
int spool_client_connect_opts(const spool_client_options *opts, spool_client **out);

/* Sends END (best effort), closes the socket and frees the client. NULL is
 * fine. */
void spool_client_free(spool_client *c);

/* The message of the last failed call on `c`: the server's error line without
 * the leading '-' (e.g. "ERR jobs must have a jobtype parameter") for
 * SPOOL_ESERVER, or a description of a local/network failure. "" when the
 * last call succeeded. Borrowed; valid until the next call on c.
 * With c == NULL: the calling thread's last error from a function that has no
 * client (spool_url_parse, spool_client_connect*, spool_worker_new). */
const char *spool_client_error(const spool_client *c);

/* Changes the per read/write timeout of c (ms, > 0). FETCH blocks about 2 s
 * on the server, so keep it above 3000. Returns 0 or SPOOL_EARG. */
int spool_client_set_timeout(spool_client *c, int timeout_ms);

/* The wid this client said HELLO with, or "" for a producer. Borrowed. */
const char *spool_client_wid(const spool_client *c);

/* Sends one raw command line (no trailing newline needed) and reads one
 * reply. On success returns 0 and *reply (if reply is not NULL) is the
 * payload: the text after '+' for a simple string ("OK"), the bytes of a bulk
 * string, or NULL for the null bulk ($-1); caller frees with spool_free. A
 * -ERR reply returns SPOOL_ESERVER with the text in spool_client_error(c).
 * Network errors return -errno / SPOOL_ECLOSED and leave c unusable
 * (spool_client_free it; connect again). Blocks. */
int spool_command(spool_client *c, const char *line, char **reply);

/* INFO: *json is the server's INFO document (caller frees). Blocks. */
int spool_info(spool_client *c, char **json);

/* FLUSH: deletes every job, queue and counter on the server. Blocks. */
int spool_flush(spool_client *c);

/* QUEUE PAUSE / RESUME / REMOVE for n names ("*" means every queue).
 * Returns 0, SPOOL_EARG for n == 0 or a name holding a space, or an error. */
int spool_queue_pause(spool_client *c, const char *const *queues, size_t n);
int spool_queue_resume(spool_client *c, const char *const *queues, size_t n);
int spool_queue_remove(spool_client *c, const char *const *queues, size_t n);

/* QUEUE LATENCY: *json is {"queue": seconds, ...} (caller frees). */
int spool_queue_latency(spool_client *c, const char *const *queues, size_t n, char **json);

/* MUTATE with raw JSON text ({"cmd":...,"target":...,"filter":...}). The text
 * is checked to be a JSON object locally (SPOOL_EJSON otherwise). */
int spool_mutate(spool_client *c, const char *json);

/* ------------------------------------------------------------------------ */
/* Jobs                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct spool_job spool_job;

/* A new job of `jobtype` with args [], a random hex jid (24 chars), queue
 * "default" and no other fields (the server fills retry=25, reserve_for=1800
 * and created_at). Returns NULL when jobtype is NULL/empty or memory ran out.
 * Owned by the caller: spool_job_free. */
spool_job *spool_job_new(const char *jobtype);

/* Parses a whole job object from JSON text (e.g. what FETCH returned, or a
 * job the CLI reads from a file). Returns 0 and *out (caller frees), or
 * SPOOL_EJSON (not an object / no string jobtype) or -ENOMEM. A missing jid
 * is generated. */
int spool_job_from_json(const char *json, spool_job **out);

void spool_job_free(spool_job *j);

/* Setters. Each returns 0, SPOOL_EARG (NULL or out-of-range value),
 * SPOOL_EJSON (text is not valid JSON of the expected kind) or -ENOMEM; on
 * error the job is unchanged. Strings are copied. */
int spool_job_set_jid(spool_job *j, const char *jid);          /* >= 8 chars */
int spool_job_set_queue(spool_job *j, const char *queue);      /* [A-Za-z0-9._-]+ */
int spool_job_set_args(spool_job *j, const char *json_array);  /* e.g. "[1,\"a\"]" */
int spool_job_set_retry(spool_job *j, int retry);              /* 0 = discard on failure */
int spool_job_set_reserve_for(spool_job *j, int reserve_for_s); /* 1..86400 */
int spool_job_set_at_unix_ns(spool_job *j, int64_t at_unix_ns); /* run at (UTC) */
int spool_job_set_at(spool_job *j, const char *rfc3339);       /* "2030-01-01T00:00:00Z" */
int spool_job_set_in_ms(spool_job *j, int64_t delay_ms);       /* at = now + delay, now = call time */
/* custom[key] = value, value being raw JSON text ("42", "\"x\"", "{...}"). */
int spool_job_set_custom(spool_job *j, const char *key, const char *json_value);
/* Any other top-level field, raw JSON (e.g. key "backtrace", value "10").
 * It also replaces fields that have their own setter, without their checks. */
int spool_job_set_field(spool_job *j, const char *key, const char *json_value);

/* Getters. Borrowed strings valid until the job is changed or freed.
 * For a fetched job, spool_job_json is the exact text the server sent;
 * for a built job it is the current serialisation. NULL only on -ENOMEM
 * (or, for spool_job_custom, when the key is absent). */
const char *spool_job_jid(const spool_job *j);
const char *spool_job_jobtype(const spool_job *j);
const char *spool_job_queue(const spool_job *j);
const char *spool_job_args(const spool_job *j);              /* JSON array text */
const char *spool_job_json(const spool_job *j);              /* whole job JSON text */
const char *spool_job_custom(const spool_job *j, const char *key); /* JSON text of custom[key] */
const char *spool_job_custom_json(const spool_job *j);       /* JSON text of custom, "{}" if none */
/* Number of args, and typed helpers for one arg: 0 on success, SPOOL_EARG if
 * out of range or of another type. *out of arg_string is borrowed. */
size_t spool_job_nargs(const spool_job *j);
int spool_job_arg_string(const spool_job *j, size_t i, const char **out);
int spool_job_arg_int(const spool_job *j, size_t i, int64_t *out);
int spool_job_arg_double(const spool_job *j, size_t i, double *out);
/* FETCHed jobs that failed before: failure.retry_count, else -1. */
int spool_job_retry_count(const spool_job *j);

/* ------------------------------------------------------------------------ */
/* Producer and low-level worker verbs                                       */
/* ------------------------------------------------------------------------ */

/* Middleware around push. An "around" hook: it may change the job and must
 * call spool_next(chain) to continue (returning its result), or return a
 * negative code to refuse the push without calling it. */
typedef struct spool_chain spool_chain;
typedef int (*spool_push_middleware)(spool_chain *chain, spool_job *job, void *ud);

/* Continues a middleware chain (push or perform) with the next hook, or the
 * real operation. Call at most once per hook invocation. */
int spool_next(spool_chain *chain);

/* Appends a push middleware to c; hooks run in the order added, for
 * spool_push and each job of spool_push_many. Returns 0 or -ENOMEM. */
int spool_client_use_push(spool_client *c, spool_push_middleware fn, void *ud);

/* PUSH one job (after running c's push middleware). The job is borrowed and
 * may be changed by middleware. Returns 0 once the server confirmed (it is
 * durable then), or SPOOL_ESERVER with the reason in spool_client_error(c).
 * Blocks. */
int spool_push(spool_client *c, spool_job *job);

/* PUSH of raw job JSON text, no middleware. */
int spool_push_json(spool_client *c, const char *job_json);

/* PUSHB of n jobs in one round trip. Returns the number of jobs the server
 * (or a middleware) refused, 0..n, or a negative code when the batch as a
 * whole failed (network, SPOOL_ESERVER). If errs is not NULL it must hold n
 * slots: errs[i] is set to the reason job i was refused (caller frees each
 * with spool_free) or NULL when it was stored. Two refused jobs sharing a jid
 * both get the (one) message the server gave for that jid. Blocks. */
int spool_push_many(spool_client *c, spool_job *const *jobs, size_t n, char **errs);

/* FETCH from queues in the given order (strict priority). Blocks up to ~2 s
 * on the server. Returns 0 and *job (caller frees), or 0 with *job NULL when
 * no job came, or a negative code. */
int spool_fetch(spool_client *c, const char *const *queues, size_t n, spool_job **job);

/* ACK a jid. An unknown jid is also 0 (the server says +OK). */
int spool_ack(spool_client *c, const char *jid);

/* The native batch limits the server advertised in its greeting (the
 * "spool" key of +HI; docs/protocol.md): most jobs per FETCHN, jids per
 * ACKN, and the advised PUSHB size. Each is 0 when the server did not offer
 * it (a Faktory server): the *_many calls then use the plain verbs. Any out
 * pointer may be NULL. */
void spool_client_batch_limits(const spool_client *c, int *fetch_max, int *ack_max, int *push_max);

/* Fetches up to max jobs in one round trip (FETCHN, at most the server's
 * fetch_max) from queues in the given order: jobs[0..ret) are filled (caller
 * frees each), the rest set to NULL. Blocks up to ~2 s on the server only
 * when no job is there. Returns the count (0: none came) or a negative code.
 * Without FETCHN on the server it is one FETCH (at most one job). */
int spool_fetch_many(spool_client *c, const char *const *queues, size_t n, spool_job **jobs,
                     size_t max);

/* ACKs n jids with one durable reply per ack_max jids (ACKN), or one ACK
 * each when the server does not offer ACKN. Unknown jids are accepted, as
 * with ACK. Returns 0, SPOOL_EARG (an empty jid) or an error; on an error
 * the jids before the failing chunk are acknowledged. */
int spool_ack_many(spool_client *c, const char *const *jids, size_t n);

/* FAIL a jid with errtype and message (NULL: "unknown") and up to nbt
 * backtrace lines (bt may be NULL). SPOOL_ESERVER "ERR Job not found <jid>"
 * when the job holds no reservation. */
int spool_fail(spool_client *c, const char *jid, const char *errtype, const char *message,
               const char *const *bt, size_t nbt);

enum spool_state { SPOOL_STATE_RUNNING = 0, SPOOL_STATE_QUIET = 1, SPOOL_STATE_TERMINATE = 2 };

/* BEAT for c's wid (c must have been connected with one: SPOOL_EARG
 * otherwise), telling the server our state (SPOOL_STATE_RUNNING: no change
 * requested) and rss_kb (<= 0: not sent). *state_out (may be NULL) gets the
 * state the server holds for the process. */
int spool_beat(spool_client *c, enum spool_state current, int64_t rss_kb,
               enum spool_state *state_out);

/* ------------------------------------------------------------------------ */
/* Worker runtime                                                            */
/* ------------------------------------------------------------------------ */

typedef struct spool_worker spool_worker;
typedef struct spool_ctx spool_ctx;

/* A job handler. Runs on one of the worker's threads with the job borrowed
 * for the duration of the call. Return 0 to ACK the job; anything else FAILs
 * it, with the errtype/message/backtrace set through spool_ctx_fail and
 * spool_ctx_backtrace (defaults: errtype "HandlerError", message "handler
 * returned <rc>"). Handlers run concurrently: shared state is theirs to
 * lock. */
typedef int (*spool_handler)(spool_ctx *ctx, const spool_job *job, void *ud);

/* Middleware around perform: call spool_next(chain) to run the rest of the
 * chain and the handler and return its result (or your own). */
typedef int (*spool_perform_middleware)(spool_chain *chain, spool_ctx *ctx, const spool_job *job,
                                        void *ud);

/* Log sink: level 0 debug, 1 info, 2 warn, 3 error. Called from any worker
 * thread, concurrently. */
typedef void (*spool_log_fn)(int level, const char *msg, void *ud);

typedef struct spool_worker_config {
    const char *url;                /* NULL: env SPOOL_URL / FAKTORY_URL / default */
    int concurrency;                /* jobs at once (threads); 0: 10 */
    const char *const *queues;      /* in priority order; NULL: {"default"} */
    size_t nqueues;
    const int *weights;             /* NULL: strict order; else nqueues weights > 0,
                                       the order is shuffled by weight per fetch */
    const char *const *labels;      /* HELLO labels */
    size_t nlabels;
    const char *hostname;           /* NULL: gethostname() */
    int shutdown_timeout_ms;        /* wait for running jobs on stop; 0: 25000 */
    int heartbeat_ms;               /* BEAT period; 0: 15000 */
    int reconnect_max_ms;           /* backoff cap while the server is away; 0: 5000 */
    int timeout_ms;                 /* per network read/write; 0: 10000 */
    const char *tls_ca_file;        /* as in spool_client_options */
    int tls_insecure_skip_verify;   /* as in spool_client_options: INSECURE */
    spool_log_fn log;               /* NULL: warnings and errors to stderr */
    void *log_ud;
} spool_worker_config;

/* A new, idle worker. The config is copied (strings too). The wid is a
 * random hex string made here (spool_worker_wid). Returns 0 and *out (owner:
 * caller, spool_worker_free), or SPOOL_EARG/SPOOL_EURL/-ENOMEM
 * (reason in spool_client_error(NULL)). Does no I/O. */
int spool_worker_new(const spool_worker_config *cfg, spool_worker **out);

/* Registers `fn` for jobs of `jobtype` (replacing an earlier one). Jobs of a
 * jobtype with no handler are FAILed with errtype "NoHandler". Call before
 * spool_worker_run (SPOOL_EBUSY after). */
int spool_worker_register(spool_worker *w, const char *jobtype, spool_handler fn, void *ud);

/* Adds middleware around perform, or around push for the clients handed to
 * handlers (spool_ctx_client). In order added; before run only. */
int spool_worker_use_perform(spool_worker *w, spool_perform_middleware fn, void *ud);
int spool_worker_use_push(spool_worker *w, spool_push_middleware fn, void *ud);

/* Runs the worker on the calling thread until it stops: by spool_worker_stop,
 * by a "terminate" from the server (BEAT reply), or on a fatal error (wrong
 * password, bad URL, TLS failure: SPOOL_ETLS). Starts `concurrency` threads, each with its own
 * connection, and BEATs every heartbeat_ms on one more connection. While the
 * server is unreachable it reconnects with exponential backoff (100 ms up to
 * reconnect_max_ms); a finished job whose ACK/FAIL could not be delivered is
 * delivered after reconnecting, so no job is lost or run twice on a blip.
 * On stop: no more fetching, running jobs get up to shutdown_timeout_ms,
 * then the ones still running are FAILed (errtype "Shutdown") and run waits
 * for their handlers to return (handlers should check
 * spool_ctx_is_stopping). Quiet (spool_worker_quiet, or from the server):
 * fetching stops, beats go on, until stop/terminate.
 * Returns 0 after a stop or terminate, or the fatal error. One run per
 * worker (SPOOL_EBUSY otherwise). */
int spool_worker_run(spool_worker *w);

/* Ask a running worker to stop (terminate). Async-signal-safe: only sets an
 * atomic flag and writes one byte to a pipe, so it may be called from a
 * signal handler or any thread. Harmless when not running or called twice. */
void spool_worker_stop(spool_worker *w);

/* Ask a running worker to go quiet: stop fetching, finish running jobs,
 * keep beating (and tell the server at the next BEAT). Async-signal-safe. */
void spool_worker_quiet(spool_worker *w);

/* Installs process signal handlers: SIGTERM and SIGINT -> spool_worker_stop,
 * SIGTSTP -> spool_worker_quiet (a second SIGINT while stopping restores the
 * default handler). One worker per process can be wired this way; a later
 * call re-targets the handlers. Returns 0 or -errno. */
int spool_worker_install_signals(spool_worker *w);

/* The current state: running, quiet or terminate (stopping). Thread-safe. */
enum spool_state spool_worker_state(const spool_worker *w);

/* Counters since run started. Thread-safe. */
uint64_t spool_worker_processed(const spool_worker *w); /* ACKed + FAILed */
uint64_t spool_worker_failed(const spool_worker *w);    /* FAILed */

/* The worker's wid (random hex). Borrowed, lives as long as w. */
const char *spool_worker_wid(const spool_worker *w);

/* Frees the worker. Must not be running (call after spool_worker_run
 * returned). If signals were installed for w, they are reset to default. */
void spool_worker_free(spool_worker *w);

/* --- inside a handler --- */

/* Sets the FAIL details for the current job: errtype (NULL: "HandlerError")
 * and a printf-style message. Copied. Returns 0 or -ENOMEM. */
int spool_ctx_fail(spool_ctx *ctx, const char *errtype, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Appends one backtrace line to the FAIL details (at most 50 are kept). */
int spool_ctx_backtrace(spool_ctx *ctx, const char *line);

/* 1 once the worker is stopping (a handler should wind down), else 0. */
int spool_ctx_is_stopping(const spool_ctx *ctx);

/* This thread's connection, for pushing follow-up jobs from a handler (with
 * the worker's push middleware). Borrowed; use only inside the handler. May
 * be NULL if the connection is down. */
spool_client *spool_ctx_client(spool_ctx *ctx);

/* The worker running the handler. */
spool_worker *spool_ctx_worker(spool_ctx *ctx);

#ifdef __cplusplus
}
#endif

#endif /* SPOOL_SPOOL_H */
