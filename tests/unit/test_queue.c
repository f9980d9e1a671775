/* The queue's SQL, called directly on a fresh database of the test cluster
 * (REFINERY_TEST_PG_URL, set by scripts/test.sh; skipped without it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "service/db.h"
#include "service/ids.h"
#include "service/migrate.h"
#include "service/queue.h"

static PGconn *db;
static const char *OWNER = "test:1:owner";

static int setup(void **state)
{
    const char *url = getenv("REFINERY_TEST_PG_URL");
    if (!url) return 0;
    char admin[1200], name[32], mine[1200];
    rf_random_alnum(name + 2, 10);
    name[0] = 'u';
    name[1] = '_';
    snprintf(admin, sizeof admin, "%s dbname=postgres", url);
    snprintf(mine, sizeof mine, "%s dbname=%s", url, name);
    PGconn *a;
    rf_error e;
    char sql[64];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    if (rf_db_connect(admin, &a, &e) || rf_db_exec(a, sql, 0, NULL, NULL, &e)) {
        fprintf(stderr, "setup: %s\n", e.msg);
        return -1;
    }
    PQfinish(a);
    if (rf_db_connect(mine, &db, &e) || rf_migrate(db, NULL, NULL, &e)) {
        fprintf(stderr, "setup: %s\n", e.msg);
        return -1;
    }
    return rf_db_exec(db, "INSERT INTO tenants (id, name) VALUES ('ten_t', 't')", 0, NULL, NULL,
                      &e);
}

static int teardown(void **state)
{
    if (db) PQfinish(db);
    return 0;
}

#define NEED_DB()                                                                                  \
    do {                                                                                           \
        if (!db) skip();                                                                           \
    } while (0)

static void sql(const char *q)
{
    rf_error e;
    int rc = rf_db_exec(db, q, 0, NULL, NULL, &e);
    if (rc) fail_msg("%s: %s", q, e.msg);
}

static char *one(const char *q)
{
    static char buf[512];
    PGresult *r;
    rf_error e;
    if (rf_db_exec(db, q, 0, NULL, &r, &e) || PQntuples(r) != 1) fail_msg("%s: %s", q, e.msg);
    snprintf(buf, sizeof buf, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return buf;
}

static void add_job(const char *id, const char *type, int priority, int max_attempts)
{
    char q[512];
    snprintf(q, sizeof q,
             "INSERT INTO jobs (id, tenant_id, type, params, priority, max_attempts)"
             " VALUES ('%s', 'ten_t', '%s', '{\"n\":1}', %d, %d)",
             id, type, priority, max_attempts);
    sql(q);
}

static void test_claim_order_and_types(void **state)
{
    NEED_DB();
    sql("DELETE FROM jobs");
    add_job("job_a", "x", 0, 3);
    add_job("job_b", "x", 5, 3);
    add_job("job_c", "y", 9, 3);
    add_job("job_d", "x", 5, 3);
    rf_claimed_job j;
    bool got;
    rf_error e;
    const char *order[] = {"job_b", "job_d", "job_a"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rf_queue_claim(db, OWNER, "{x}", 60000, &j, &got, &e), 0);
        assert_true(got);
        assert_string_equal(j.id, order[i]);
        assert_int_equal(j.attempt, 1);
        assert_int_equal(json_integer_value(json_object_get(j.params, "n")), 1);
        assert_null(j.checkpoint);
        rf_claimed_job_clear(&j);
    }
    assert_int_equal(rf_queue_claim(db, OWNER, "{x}", 60000, &j, &got, &e), 0);
    assert_false(got); /* job_c is of a type this owner does not run */
    assert_string_equal(one("SELECT status FROM jobs WHERE id = 'job_c'"), "queued");
}

static void test_fence_and_finish(void **state)
{
    NEED_DB();
    sql("DELETE FROM jobs");
    add_job("job_f", "x", 0, 3);
    rf_claimed_job j;
    bool got;
    rf_error e;
    assert_int_equal(rf_queue_claim(db, OWNER, "{x}", 60000, &j, &got, &e), 0);
    rf_claimed_job stale = j;
    stale.attempt = 7; /* a worker that thinks it holds another attempt */
    assert_int_equal(rf_queue_finish(db, &stale, OWNER, "succeeded", "{}", NULL, &e), RF_ECONFLICT);
    assert_int_equal(rf_queue_finish(db, &j, "someone:else", "succeeded", "{}", NULL, &e),
                     RF_ECONFLICT);
    assert_int_equal(rf_queue_checkpoint(db, &j, OWNER, "{\"step\":3}", &e), 0);
    assert_int_equal(rf_queue_progress(db, &j, OWNER, 1.7, &e), 0);
    assert_string_equal(one("SELECT progress FROM jobs WHERE id = 'job_f'"), "1");
    assert_int_equal(rf_queue_finish(db, &j, OWNER, "succeeded", "{\"ok\":true}", NULL, &e), 0);
    assert_string_equal(one("SELECT status || ' ' || result::text || ' ' || (lease_owner IS NULL)"
                            " FROM jobs WHERE id = 'job_f'"),
                        "succeeded {\"ok\": true} true");
    /* Finished: every further fenced write is refused. */
    assert_int_equal(rf_queue_checkpoint(db, &j, OWNER, "{}", &e), RF_ECONFLICT);
    rf_claimed_job_clear(&j);
}

/* One claim for many workers: the most urgent first, never more than asked
 * for, each counted as its own attempt with its own first event. */
static void test_claim_many(void **state)
{
    NEED_DB();
    sql("DELETE FROM jobs");
    add_job("job_m1", "x", 0, 3);
    add_job("job_m2", "x", 7, 3);
    add_job("job_m3", "y", 9, 3);
    add_job("job_m4", "x", 7, 3);
    add_job("job_m5", "x", -1, 3);
    rf_claimed_job jobs[RF_QUEUE_CLAIM_MAX];
    int got = -1;
    rf_error e;
    assert_int_equal(rf_queue_claim_many(db, OWNER, "{x}", 60000, 3, jobs, &got, &e), 0);
    assert_int_equal(got, 3);
    const char *order[] = {"job_m2", "job_m4", "job_m1"};
    for (int i = 0; i < 3; i++) {
        assert_string_equal(jobs[i].id, order[i]);
        assert_int_equal(jobs[i].attempt, 1);
        assert_int_equal(json_integer_value(json_object_get(jobs[i].params, "n")), 1);
        rf_claimed_job_clear(&jobs[i]);
    }
    assert_string_equal(one("SELECT string_agg(id || ':' || status, ',' ORDER BY id) FROM jobs"),
                        "job_m1:running,job_m2:running,job_m3:queued,job_m4:running,"
                        "job_m5:queued");
    assert_string_equal(one("SELECT count(*) FROM job_events WHERE kind = 'log'"
                            " AND data->>'message' = 'attempt started'"),
                        "3");
    /* More asked for than runnable: what there is. */
    assert_int_equal(rf_queue_claim_many(db, OWNER, "{x}", 60000, 16, jobs, &got, &e), 0);
    assert_int_equal(got, 1);
    assert_string_equal(jobs[0].id, "job_m5");
    rf_claimed_job_clear(&jobs[0]);
    assert_int_equal(rf_queue_claim_many(db, OWNER, "{x}", 60000, 4, jobs, &got, &e), 0);
    assert_int_equal(got, 0);
}

/* Outcomes in one batch are fenced row by row: the job whose lease was lost
 * (here: rescued and claimed again by another worker) is refused and left as
 * it is, the others are recorded, each with its final event. */
static void test_finish_many_fenced(void **state)
{
    NEED_DB();
    sql("DELETE FROM jobs");
    add_job("job_n1", "x", 0, 3);
    add_job("job_n2", "x", 0, 3);
    add_job("job_n3", "x", 0, 3);
    rf_claimed_job jobs[3];
    int got;
    rf_error e;
    assert_int_equal(rf_queue_claim_many(db, OWNER, "{x}", 60000, 3, jobs, &got, &e), 0);
    assert_int_equal(got, 3);
    int lost = -1;
    for (int i = 0; i < 3; i++)
        if (!strcmp(jobs[i].id, "job_n2")) lost = i;
    assert_true(lost >= 0);
    /* Its lease expired and another worker holds its next attempt. */
    sql("UPDATE jobs SET attempts = attempts + 1, lease_owner = 'other:2:x' WHERE id = 'job_n2'");
    rf_finish f[3];
    for (int i = 0; i < 3; i++)
        f[i] = (rf_finish){.job = &jobs[i],
                           .status = i == 0 ? "failed" : "succeeded",
                           .result_json = i == 0 ? NULL : "{\"i\":1}",
                           .error = i == 0 ? "bad \"input\", {quoted} \\ too" : NULL,
                           .rc = 99};
    assert_int_equal(rf_queue_finish_many(db, OWNER, f, 3, NULL, &e), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(f[i].rc, i == lost ? RF_ECONFLICT : 0);
    assert_string_equal(one("SELECT status || ' ' || attempts || ' ' || lease_owner"
                            " FROM jobs WHERE id = 'job_n2'"),
                        "running 2 other:2:x");
    char q[256];
    for (int i = 0; i < 3; i++) {
        if (i == lost) continue;
        snprintf(q, sizeof q,
                 "SELECT status || ' ' || coalesce(result::text, '-') || ' ' ||"
                 " coalesce(error, '-') || ' ' || (lease_owner IS NULL) || ' ' || progress"
                 " FROM jobs WHERE id = '%s'",
                 jobs[i].id);
        assert_string_equal(one(q), i == 0 ? "failed - bad \"input\", {quoted} \\ too true 0"
                                           : "succeeded {\"i\": 1} - true 1");
        snprintf(q, sizeof q,
                 "SELECT count(*) || ' ' || max(data->>'status') FROM job_events"
                 " WHERE job_id = '%s' AND kind = 'status'",
                 jobs[i].id);
        assert_string_equal(one(q), i == 0 ? "1 failed" : "1 succeeded");
    }
    assert_string_equal(one("SELECT count(*) FROM job_events WHERE job_id = 'job_n2'"
                            " AND kind = 'status'"),
                        "0");
    /* Recorded once: the same outcomes again are all refused. */
    assert_int_equal(rf_queue_finish_many(db, OWNER, f, 3, NULL, &e), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(f[i].rc, RF_ECONFLICT);
    for (int i = 0; i < 3; i++)
        rf_claimed_job_clear(&jobs[i]);
}

/* A claim made with a batch of outcomes: the jobs the outcomes free take the
 * next ones in the same call, in order; a claim that fails (an unknown type
 * list) costs the outcomes nothing; a call made again once the claim was
 * answered (after a lost connection) claims no more. */
static void test_finish_then_claim(void **state)
{
    NEED_DB();
    sql("DELETE FROM jobs");
    add_job("job_c1", "x", 5, 3);
    add_job("job_c2", "x", 5, 3);
    add_job("job_c3", "x", 3, 3);
    add_job("job_c4", "x", 1, 3);
    add_job("job_c5", "x", 0, 3);
    rf_claimed_job held[2], next[RF_QUEUE_CLAIM_MAX];
    int got;
    rf_error e;
    assert_int_equal(rf_queue_claim_many(db, OWNER, "{x}", 60000, 2, held, &got, &e), 0);
    assert_int_equal(got, 2);
    rf_finish f[2];
    for (int i = 0; i < 2; i++)
        f[i] = (rf_finish){.job = &held[i], .status = "succeeded", .result_json = "{}"};
    rf_claim c = {.types = "{x}", .lease_ms = 60000, .max = 2, .jobs = next};
    assert_int_equal(rf_queue_finish_many(db, OWNER, f, 2, &c, &e), 0);
    assert_int_equal(f[0].rc, 0);
    assert_int_equal(f[1].rc, 0);
    assert_int_equal(c.rc, 0);
    assert_true(c.made);
    assert_int_equal(c.got, 2);
    assert_string_equal(next[0].id, "job_c3");
    assert_string_equal(next[1].id, "job_c4");
    assert_string_equal(one("SELECT string_agg(id || ':' || status, ',' ORDER BY id) FROM jobs"),
                        "job_c1:succeeded,job_c2:succeeded,job_c3:running,job_c4:running,"
                        "job_c5:queued");
    assert_string_equal(one("SELECT count(*) FROM job_events WHERE job_id = 'job_c3'"
                            " AND data->>'message' = 'attempt started'"),
                        "1");
    /* Again with the claim answered: the outcomes are refused (recorded
     * already) and nothing more is claimed. */
    assert_int_equal(rf_queue_finish_many(db, OWNER, f, 2, &c, &e), 0);
    assert_int_equal(f[0].rc, RF_ECONFLICT);
    assert_int_equal(c.got, 2);
    assert_string_equal(one("SELECT status FROM jobs WHERE id = 'job_c5'"), "queued");
    for (int i = 0; i < 2; i++)
        rf_claimed_job_clear(&held[i]);
    /* The claim fails on its own; the outcomes are recorded. */
    f[0] = (rf_finish){.job = &next[0], .status = "failed", .error = "no"};
    f[1] = (rf_finish){.job = &next[1], .status = "succeeded", .result_json = "{}"};
    rf_claim bad = {.types = "{not a literal", .lease_ms = 60000, .max = 1, .jobs = held};
    assert_int_equal(rf_queue_finish_many(db, OWNER, f, 2, &bad, &e), 0);
    assert_int_equal(f[0].rc, 0);
    assert_int_equal(f[1].rc, 0);
    assert_int_equal(bad.rc, RF_EDB);
    assert_int_equal(bad.got, 0);
    assert_non_null(strstr(bad.err.msg, "database error"));
    assert_string_equal(one("SELECT string_agg(id || ':' || status, ',' ORDER BY id) FROM jobs"),
                        "job_c1:succeeded,job_c2:succeeded,job_c3:failed,job_c4:succeeded,"
                        "job_c5:queued");
    /* The connection is usable: its next statement runs. */
    assert_int_equal(rf_queue_claim_many(db, OWNER, "{x}", 60000, 4, held, &got, &e), 0);
    assert_int_equal(got, 1);
    assert_string_equal(held[0].id, "job_c5");
    rf_claimed_job_clear(&held[0]);
    for (int i = 0; i < 2; i++)
        rf_claimed_job_clear(&next[i]);
}

/* Events of several jobs in one statement keep each job's order. */
static void test_events_batch(void **state)
{
    NEED_DB();
    sql("DELETE FROM jobs");
    add_job("job_e1", "x", 0, 3);
    add_job("job_e2", "x", 0, 3);
    const char *ids[] = {"job_e1", "job_e2", "job_e1", "job_e1"};
    const char *kinds[] = {"log", "log", "progress", "log"};
    const char *data[] = {"{\"n\":1}", "{\"n\":2}", "{\"n\":3}", "{\"n\":\"4 \\\" q\"}"};
    rf_error e;
    assert_int_equal(rf_queue_events(db, 4, ids, kinds, data, &e), 0);
    assert_string_equal(one("SELECT string_agg(kind || '=' || (data->>'n'), ',' ORDER BY id)"
                            " FROM job_events WHERE job_id = 'job_e1'"),
                        "log=1,progress=3,log=4 \" q");
    assert_string_equal(one("SELECT count(*) FROM job_events WHERE job_id = 'job_e2'"), "1");
}

static void test_retry_backoff_and_give_up(void **state)
{
    NEED_DB();
    sql("DELETE FROM jobs");
    add_job("job_r", "x", 0, 2);
    rf_claimed_job j;
    bool got, final;
    rf_error e;
    assert_int_equal(rf_queue_claim(db, OWNER, "{x}", 60000, &j, &got, &e), 0);
    assert_int_equal(rf_queue_retry(db, &j, OWNER, "disk on fire", 10000, 60000, &final, &e), 0);
    assert_false(final);
    /* First retry waits base·2^0·[0.5, 1) = 5..10 s. */
    double wait =
        atof(one("SELECT extract(epoch from run_after - now()) FROM jobs WHERE id = 'job_r'"));
    assert_true(wait > 4.9 && wait < 10.1);
    assert_string_equal(one("SELECT error FROM jobs WHERE id = 'job_r'"),
                        "disk on fire (attempt 1 of 2; will retry)");
    rf_claimed_job_clear(&j);
    assert_int_equal(rf_queue_claim(db, OWNER, "{x}", 60000, &j, &got, &e), 0);
    assert_false(got); /* not before its time */
    sql("UPDATE jobs SET run_after = now() WHERE id = 'job_r'");
    assert_int_equal(rf_queue_claim(db, OWNER, "{x}", 60000, &j, &got, &e), 0);
    assert_true(got);
    assert_int_equal(j.attempt, 2);
    assert_int_equal(rf_queue_retry(db, &j, OWNER, "still burning", 10000, 60000, &final, &e), 0);
    assert_true(final);
    assert_string_equal(one("SELECT status || ': ' || error FROM jobs WHERE id = 'job_r'"),
                        "failed: still burning (attempt 2 of 2; giving up)");
    rf_claimed_job_clear(&j);
}

/* Every retry waits min(base·2^(n−1), cap)·[0.5, 1): the waits grow, then
 * stop growing at the cap, on both sides of the jitter. */
static void test_retry_growth_and_cap(void **state)
{
    NEED_DB();
    sql("DELETE FROM jobs");
    add_job("job_g", "x", 0, 6);
    const double base = 10, cap = 30; /* seconds */
    const double full[] = {10, 20, 30, 30, 30};
    for (int n = 0; n < 5; n++) {
        rf_claimed_job j;
        bool got, final;
        rf_error e;
        sql("UPDATE jobs SET run_after = now() WHERE id = 'job_g'");
        assert_int_equal(rf_queue_claim(db, OWNER, "{x}", 60000, &j, &got, &e), 0);
        assert_true(got);
        assert_int_equal(j.attempt, n + 1);
        assert_int_equal(rf_queue_retry(db, &j, OWNER, "flaky", (int)(base * 1000),
                                        (int)(cap * 1000), &final, &e),
                         0);
        assert_false(final);
        double wait =
            atof(one("SELECT extract(epoch from run_after - now()) FROM jobs WHERE id = 'job_g'"));
        /* 0.1 s of slack for the time between the UPDATE and this SELECT */
        if (!(wait > full[n] * 0.5 - 0.1 && wait < full[n] + 0.1))
            fail_msg("retry %d waited %.2f s, expected [%.1f, %.1f)", n + 1, wait, full[n] * 0.5,
                     full[n]);
        rf_claimed_job_clear(&j);
    }
}

static void test_release_heartbeat_rescue(void **state)
{
    NEED_DB();
    sql("DELETE FROM jobs");
    add_job("job_h", "x", 0, 3);
    add_job("job_l", "x", 0, 3);
    rf_claimed_job j, k;
    bool got;
    rf_error e;
    assert_int_equal(rf_queue_claim(db, OWNER, "{x}", 60000, &j, &got, &e), 0);
    assert_int_equal(rf_queue_claim(db, "other:2:x", "{x}", 60000, &k, &got, &e), 0);
    /* Release hands the job back without counting the attempt. */
    assert_int_equal(rf_queue_release(db, &j, OWNER, &e), 0);
    assert_string_equal(one("SELECT status || attempts FROM jobs WHERE id = 'job_h'"), "queued0");
    rf_claimed_job_clear(&j);
    /* The other owner's lease runs out: the rescuer re-queues with attempt kept. */
    sql("UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = 'job_l'");
    assert_int_equal(rf_queue_heartbeat(db, OWNER, "{job_h,job_l}", 60000, NULL, NULL, &e), 0);
    assert_string_equal(one("SELECT status FROM jobs WHERE id = 'job_l'"), "running");
    int n = 0;
    assert_int_equal(rf_queue_rescue(db, 0, 0, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_string_equal(one("SELECT status || attempts FROM jobs WHERE id = 'job_l'"), "queued1");
    assert_string_equal(one("SELECT data->>'message' FROM job_events WHERE job_id = 'job_l'"
                            " AND data->>'level' = 'warn'"),
                        "worker lost (lease expired) on attempt 1 of 3; will retry");
    /* Heartbeat extends a live lease so that rescue leaves it alone. */
    assert_int_equal(rf_queue_claim(db, OWNER, "{x}", 1, &j, &got, &e), 0);
    usleep(20000);
    assert_int_equal(rf_queue_heartbeat(db, OWNER, "{job_h}", 60000, NULL, NULL, &e), 0);
    assert_int_equal(rf_queue_rescue(db, 0, 0, &n, &e), 0);
    assert_int_equal(n, 0);
    /* A job the owner holds but does not name (no worker runs it any more)
     * is not kept alive: it expires and is rescued. */
    assert_string_equal(j.id, "job_h");
    rf_claimed_job_clear(&k);
    assert_int_equal(rf_queue_claim(db, OWNER, "{x}", 1, &k, &got, &e), 0);
    assert_true(got);
    assert_string_equal(k.id, "job_l");
    usleep(20000);
    assert_int_equal(rf_queue_heartbeat(db, OWNER, "{job_h}", 60000, NULL, NULL, &e), 0);
    assert_int_equal(rf_queue_rescue(db, 0, 0, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_string_equal(one("SELECT status FROM jobs WHERE id = 'job_h'"), "running");
    rf_claimed_job_clear(&j);
    rf_claimed_job_clear(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claim_order_and_types),
        cmocka_unit_test(test_fence_and_finish),
        cmocka_unit_test(test_claim_many),
        cmocka_unit_test(test_finish_many_fenced),
        cmocka_unit_test(test_finish_then_claim),
        cmocka_unit_test(test_events_batch),
        cmocka_unit_test(test_retry_backoff_and_give_up),
        cmocka_unit_test(test_retry_growth_and_cap),
        cmocka_unit_test(test_release_heartbeat_rescue),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
