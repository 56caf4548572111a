/*
 * libspool over TLS against the real spoold: a throwaway CA and server
 * certificate are made at start with the openssl command (tests/lib/
 * tls_certs.sh), spoold serves them from a config directory, and the client
 * must verify the chain and the name, fail clearly on a wrong CA or name or
 * on a plaintext port, and carry jobs and a worker over the session.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "spool/spool.h"
#include "spoold_proc.h"

static char certs[256]; /* the directory tls_certs.sh filled */
static struct spoold_proc tls_srv;

static const char *cert_path(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", certs, name);
    return buf[k];
}

static int group_setup(void **state)
{
    const char *script = getenv("TLS_CERTS_SH");
    if (!script)
        return -1;
    snprintf(certs, sizeof certs, "/tmp/spool-tls-test-XXXXXX");
    if (!mkdtemp(certs))
        return -1;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' '%s'", script, certs);
    if (system(cmd) != 0) {
        fprintf(stderr, "%s failed: is the openssl command installed?\n", script);
        return -1;
    }
    unsetenv("SPOOL_TLS_CA");
    unsetenv("SPOOL_TLS_INSECURE_SKIP_VERIFY");
    return spoold_start_tls(&tls_srv, cert_path("conf"));
}

static int group_teardown(void **state)
{
    spoold_destroy(&tls_srv);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", certs);
    (void)!system(cmd);
    return 0;
}

static spool_client *connect_ca(const char *url, const char *ca)
{
    spool_client_options o = {.url = url, .tls_ca_file = ca};
    spool_client *c = NULL;
    int rc = spool_client_connect_opts(&o, &c);
    if (rc)
        fail_msg("connect %s with CA %s: %s (%s)", url ? url : "(default URL)", ca ? ca : "(none)",
                 spool_strerror(rc), spool_client_error(NULL));
    return c;
}

static void tls_push_fetch_ack_with_the_ca(void **state)
{
    spool_client *c = connect_ca(tls_srv.url, cert_path("ca.pem"));
    /* A job far larger than one TLS record (16 KiB) crosses in many. */
    size_t big = 300000;
    char *args = malloc(big + 8);
    assert_non_null(args);
    args[0] = '[';
    args[1] = '"';
    memset(args + 2, 'x', big);
    memcpy(args + 2 + big, "\"]", 3);
    spool_job *j = spool_job_new("tls_job");
    assert_non_null(j);
    assert_int_equal(spool_job_set_queue(j, "tlsq"), 0);
    assert_int_equal(spool_job_set_args(j, args), 0);
    char jid[64];
    snprintf(jid, sizeof jid, "%s", spool_job_jid(j));
    assert_int_equal(spool_push(c, j), 0);
    spool_job_free(j);
    const char *qs[] = {"tlsq"};
    spool_job *got = NULL;
    assert_int_equal(spool_fetch(c, qs, 1, &got), 0);
    assert_non_null(got);
    assert_string_equal(spool_job_jid(got), jid);
    assert_int_equal(strlen(spool_job_args(got)), big + 4);
    spool_job_free(got);
    free(args);
    assert_int_equal(spool_ack(c, jid), 0);
    char *info = NULL;
    assert_int_equal(spool_info(c, &info), 0);
    assert_non_null(strstr(info, "\"total_processed\":1"));
    spool_free(info);
    spool_client_free(c);
}

static void tls_ca_and_url_from_env_and_ip_address_name(void **state)
{
    setenv("SPOOL_TLS_CA", cert_path("ca.pem"), 1);
    spool_client *c = connect_ca(tls_srv.url, NULL);
    spool_client_free(c);
    /* The certificate names 127.0.0.1 as an IP address too. */
    char url[128];
    snprintf(url, sizeof url, "tcp+tls://127.0.0.1:%d", tls_srv.port);
    c = connect_ca(url, NULL);
    spool_client_free(c);
    /* A Faktory-style FAKTORY_URL with tcp+tls works as the default URL. */
    unsetenv("SPOOL_URL");
    setenv("FAKTORY_URL", tls_srv.url, 1);
    c = connect_ca(NULL, NULL);
    spool_client_free(c);
    unsetenv("FAKTORY_URL");
    unsetenv("SPOOL_TLS_CA");
}

static void tls_wrong_ca_fails_clearly(void **state)
{
    spool_client_options o = {.url = tls_srv.url, .tls_ca_file = cert_path("other-ca.pem")};
    spool_client *c = NULL;
    assert_int_equal(spool_client_connect_opts(&o, &c), SPOOL_ETLS);
    assert_null(c);
    const char *e = spool_client_error(NULL);
    if (!strstr(e, "not trusted") || !strstr(e, "localhost"))
        fail_msg("the error should say the certificate for localhost is not trusted: %s", e);
    /* The system CAs do not know the test CA either. */
    o.tls_ca_file = NULL;
    assert_int_equal(spool_client_connect_opts(&o, &c), SPOOL_ETLS);
    assert_non_null(strstr(spool_client_error(NULL), "not trusted"));
    /* A CA file that does not exist is named. */
    o.tls_ca_file = cert_path("missing.pem");
    assert_int_equal(spool_client_connect_opts(&o, &c), SPOOL_ETLS);
    assert_non_null(strstr(spool_client_error(NULL), "missing.pem"));
}

static void tls_insecure_skip_verify_connects_anyway(void **state)
{
    spool_client_options o = {.url = tls_srv.url,
                              .tls_ca_file = cert_path("other-ca.pem"),
                              .tls_insecure_skip_verify = 1};
    spool_client *c = NULL;
    assert_int_equal(spool_client_connect_opts(&o, &c), 0);
    spool_client_free(c);
    setenv("SPOOL_TLS_INSECURE_SKIP_VERIFY", "1", 1);
    c = NULL;
    assert_int_equal(spool_client_connect(tls_srv.url, &c), 0);
    spool_client_free(c);
    unsetenv("SPOOL_TLS_INSECURE_SKIP_VERIFY");
    assert_int_equal(spool_client_connect(tls_srv.url, &c), SPOOL_ETLS);
}

static void tls_name_mismatch_fails_clearly(void **state)
{
    /* A server whose certificate, from the trusted CA, is for other.invalid only. */
    char conf[600], cmd[2048];
    snprintf(conf, sizeof conf, "%s/wrongname-conf", certs);
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s' && cp '%s' '%s/public.cert.pem' && cp '%s' '%s/private.key.pem'", conf,
             cert_path("wrongname.pem"), conf, cert_path("wrongname.key"), conf);
    assert_int_equal(system(cmd), 0);
    struct spoold_proc p;
    assert_int_equal(spoold_start_tls(&p, conf), 0);
    spool_client_options o = {.url = p.url, .tls_ca_file = cert_path("ca.pem")};
    spool_client *c = NULL;
    assert_int_equal(spool_client_connect_opts(&o, &c), SPOOL_ETLS);
    const char *e = spool_client_error(NULL);
    if (!strstr(e, "hostname mismatch"))
        fail_msg("the error should say the name does not match: %s", e);
    spoold_destroy(&p);
}

static void tls_url_to_a_plaintext_port_fails_clearly(void **state)
{
    struct spoold_proc p;
    assert_int_equal(spoold_start(&p, 0, NULL), 0);
    char url[128];
    snprintf(url, sizeof url, "tcp+tls://localhost:%d", p.port);
    spool_client_options o = {.url = url, .tls_ca_file = cert_path("ca.pem"), .timeout_ms = 5000};
    spool_client *c = NULL;
    int rc = spool_client_connect_opts(&o, &c);
    assert_int_equal(rc, SPOOL_ETLS);
    const char *e = spool_client_error(NULL);
    if (!strstr(e, "is that port serving TLS"))
        fail_msg("the error should suggest the port is not TLS: %s", e);
    /* And the plaintext server is unharmed. */
    c = NULL;
    assert_int_equal(spool_client_connect(p.url, &c), 0);
    spool_client_free(c);
    spoold_destroy(&p);
}

static void quiet_log(int level, const char *msg, void *ud)
{
}

static atomic_int handled;

static int count_handler(spool_ctx *ctx, const spool_job *job, void *ud)
{
    atomic_fetch_add(&handled, 1);
    return 0;
}

struct runner {
    pthread_t thread;
    spool_worker *w;
    atomic_int rc, done;
};

static void *run_thread(void *arg)
{
    struct runner *r = arg;
    atomic_store(&r->rc, spool_worker_run(r->w));
    atomic_store(&r->done, 1);
    return NULL;
}

static void tls_worker_runs_jobs(void **state)
{
    spool_client *c = connect_ca(tls_srv.url, cert_path("ca.pem"));
    for (int i = 0; i < 10; i++) {
        spool_job *j = spool_job_new("count");
        assert_int_equal(spool_job_set_queue(j, "wq"), 0);
        assert_int_equal(spool_push(c, j), 0);
        spool_job_free(j);
    }
    const char *qs[] = {"wq"};
    spool_worker_config cfg = {.url = tls_srv.url,
                               .concurrency = 3,
                               .queues = qs,
                               .nqueues = 1,
                               .tls_ca_file = cert_path("ca.pem"),
                               .shutdown_timeout_ms = 2000};
    spool_worker *w = NULL;
    if (spool_worker_new(&cfg, &w) != 0)
        fail_msg("worker_new: %s", spool_client_error(NULL));
    assert_int_equal(spool_worker_register(w, "count", count_handler, NULL), 0);
    struct runner r = {.w = w};
    atomic_store(&handled, 0);
    assert_int_equal(pthread_create(&r.thread, NULL, run_thread, &r), 0);
    long long deadline = test_now_ms() + 20000;
    while (spool_worker_processed(w) < 10 && test_now_ms() < deadline)
        poll(NULL, 0, 10);
    assert_int_equal(spool_worker_processed(w), 10);
    spool_worker_stop(w);
    deadline = test_now_ms() + 10000;
    while (!atomic_load(&r.done) && test_now_ms() < deadline)
        poll(NULL, 0, 10);
    assert_true(atomic_load(&r.done));
    pthread_join(r.thread, NULL);
    assert_int_equal(atomic_load(&r.rc), 0);
    assert_int_equal(atomic_load(&handled), 10);
    spool_worker_free(w);
    spool_client_free(c);
}

static void tls_worker_with_a_wrong_ca_stops_with_etls(void **state)
{
    const char *qs[] = {"wq2"};
    spool_worker_config cfg = {.url = tls_srv.url,
                               .concurrency = 1,
                               .queues = qs,
                               .nqueues = 1,
                               .tls_ca_file = cert_path("other-ca.pem"),
                               .log = quiet_log};
    spool_worker *w = NULL;
    assert_int_equal(spool_worker_new(&cfg, &w), 0);
    assert_int_equal(spool_worker_register(w, "count", count_handler, NULL), 0);
    struct runner r = {.w = w};
    assert_int_equal(pthread_create(&r.thread, NULL, run_thread, &r), 0);
    /* An untrusted server does not get better by retrying: the run ends. */
    long long deadline = test_now_ms() + 10000;
    while (!atomic_load(&r.done) && test_now_ms() < deadline)
        poll(NULL, 0, 10);
    if (!atomic_load(&r.done)) {
        spool_worker_stop(w);
        pthread_join(r.thread, NULL);
        fail_msg("a worker that cannot trust the server should stop within 10 s");
    }
    pthread_join(r.thread, NULL);
    assert_int_equal(atomic_load(&r.rc), SPOOL_ETLS);
    spool_worker_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tls_push_fetch_ack_with_the_ca),
        cmocka_unit_test(tls_ca_and_url_from_env_and_ip_address_name),
        cmocka_unit_test(tls_wrong_ca_fails_clearly),
        cmocka_unit_test(tls_insecure_skip_verify_connects_anyway),
        cmocka_unit_test(tls_name_mismatch_fails_clearly),
        cmocka_unit_test(tls_url_to_a_plaintext_port_fails_clearly),
        cmocka_unit_test(tls_worker_runs_jobs),
        cmocka_unit_test(tls_worker_with_a_wrong_ca_stops_with_etls),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
