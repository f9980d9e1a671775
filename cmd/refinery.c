/* refinery — one binary: serve | worker | migrate | keys | run | tokenize | forward |
 * generate | eval. */
#include <errno.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/jobs/dataset_params.h"
#include "engine/backend/blas_core.h"
#include "engine/jobs/job.h"
#include "engine/jobs/testjobs.h"
#include "handlers/routes.h"
#include "service/auth.h"
#include "cli/generate.h"
#include "cli/model.h"
#include "cli/run.h"
#include "cli/report.h"
#include "cli/sample.h"
#include "cli/tokenize.h"
#include "cli/watch.h"
#include "service/config.h"
#include "service/db.h"
#include "service/http.h"
#include "service/infer.h"
#include "service/log.h"
#include "service/migrate.h"
#include "service/sweep.h"
#include "service/worker.h"

static int usage(FILE *f)
{
    fprintf(
        f, "usage: refinery COMMAND\n"
           "  serve                       HTTP API and engine workers\n"
           "  worker                      engine workers only (no HTTP)\n"
           "  migrate                     apply database migrations and exit\n"
           "  run JOB.json [--workdir DIR] run one job without the server (events on stdout)\n"
           "  jobs watch JOB_ID [--url URL] [--api-key KEY]   follow a job on a server\n"
           "  sample DIR                  a small model, its tokenizer and datasets to try\n"
           "  keys create --tenant NAME   create an API key (printed once)\n"
           "  keys revoke KEY_ID          revoke an API key\n"
           "  tokenize --model DIR        text on stdin → token ids (--decode: the reverse)\n"
           "  forward --model DIR --ids 1,2,3 --out FILE.safetensors   all logits, F32\n"
           "  generate --model DIR --prompt TEXT [--chat] [--max-tokens N] …   continue a prompt\n"
           "  eval --model DIR --dataset FILE.jsonl [--metrics …] [--split S] [--limit N]\n"
           "  report RESULT.json [--out FILE.html]   a pipeline result as its HTML report\n"
           "configuration: REFINERY_DATABASE_URL, REFINERY_LISTEN, REFINERY_WORKERS, … (README)\n");
    return f == stderr ? 2 : 0;
}

static int fail(const rf_error *err)
{
    fprintf(stderr, "refinery: %s\n", err->msg);
    return 1;
}

static int load(rf_config *cfg, rf_error *err)
{
    if (rf_config_load(cfg, err)) return -1;
    rf_log_init(cfg->log_json);
    if (!cfg->database_url[0]) {
        rf_errorf(err, RF_EINVAL,
                  "REFINERY_DATABASE_URL is not set (make run starts a local "
                  "PostgreSQL and sets it)");
        return -1;
    }
    return 0;
}

/* Set by the SIGTERM/SIGINT handler of serve and worker. */
static volatile sig_atomic_t g_signal;

static int migrate_with(const rf_config *cfg, rf_error *err)
{
    PGconn *c;
    int applied = 0;
    /* The first connection of a starting process may wait for the database. */
    if (rf_db_connect_wait(cfg->database_url, cfg->db_wait_s, &g_signal, &c, err)) return -1;
    int rc = rf_migrate(c, cfg->migrations_dir, &applied, err);
    PQfinish(c);
    if (!rc) rf_log(RF_LOG_INFO, "database schema current (%d migration(s) applied now)", applied);
    return rc;
}

/* Crash leftovers in the data folder (service/sweep.h): finished or removed;
 * missing files are reported. */
static int sweep(const rf_config *cfg, rf_error *err)
{
    PGconn *c;
    rf_sweep_stats st;
    if (rf_db_connect(cfg->database_url, &c, err)) return -1;
    int rc = rf_sweep_data(c, cfg->data_dir, true, &st, err);
    PQfinish(c);
    if (!rc && (st.finished || st.removed || st.missing || st.unrecorded))
        rf_log(RF_LOG_WARN,
               "data sweep: %d interrupted move(s) finished, %d leftover(s) removed, %d "
               "unrecorded artifact file(s) removed, %d recorded file(s) missing",
               st.finished, st.removed, st.unrecorded, st.missing);
    return rc;
}

static int cmd_migrate(void)
{
    rf_config cfg;
    rf_error err;
    if (load(&cfg, &err) || migrate_with(&cfg, &err)) return fail(&err);
    return 0;
}

static int cmd_keys(int argc, char **argv)
{
    rf_config cfg;
    rf_error err;
    PGconn *c = NULL;
    int rc = 2;
    if (argc < 2) return usage(stderr);
    if (load(&cfg, &err) || rf_db_connect_wait(cfg.database_url, cfg.db_wait_s, NULL, &c, &err))
        return fail(&err);
    if (!strcmp(argv[1], "create")) {
        const char *tenant = NULL;
        for (int i = 2; i < argc; i++) {
            if (!strcmp(argv[i], "--tenant") && i + 1 < argc)
                tenant = argv[++i];
            else if (!strncmp(argv[i], "--tenant=", 9))
                tenant = argv[i] + 9;
            else {
                fprintf(stderr, "refinery keys create: unknown argument '%s'\n", argv[i]);
                goto out;
            }
        }
        if (!tenant) {
            fprintf(stderr, "refinery keys create: --tenant NAME is required\n");
            goto out;
        }
        char key[RF_KEY_MAX], id[RF_ID_MAX], tid[RF_ID_MAX];
        if (rf_key_create(c, tenant, key, id, tid, &err)) {
            rc = fail(&err);
            goto out;
        }
        /* The key on stdout alone, so that scripts can capture it. */
        printf("%s\n", key);
        fprintf(stderr, "created key %s for tenant %s (%s); it is shown only this once\n", id,
                tenant, tid);
        rc = 0;
    } else if (!strcmp(argv[1], "revoke") && argc == 3) {
        if (rf_key_revoke(c, argv[2], &err)) {
            rc = fail(&err);
            goto out;
        }
        fprintf(stderr, "revoked key %s\n", argv[2]);
        rc = 0;
    } else {
        usage(stderr);
    }
out:
    PQfinish(c);
    return rc;
}

static sem_t g_stop;

static void on_stop_signal(int sig)
{
    g_signal = sig;
    sem_post(&g_stop); /* async-signal-safe */
}

/* serve and worker: run until SIGTERM or SIGINT, then shut down in order. */
static int cmd_serve(bool http)
{
    rf_config cfg;
    rf_error err;
    rf_workers *workers = NULL;
    rf_http *server = NULL;
    if (load(&cfg, &err)) return fail(&err);

    /* A handler, not a blocked mask: libraries start threads of their own
     * (OpenBLAS at load time) that would otherwise take the default action. */
    sem_init(&g_stop, 0, 0);
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* a file-size limit is an I/O error to report, not a death */

    if (migrate_with(&cfg, &err) || sweep(&cfg, &err)) return fail(&err);
    rf_log(RF_LOG_INFO, "OpenBLAS kernels: %s%s", rf_blas_core(),
           getenv("OPENBLAS_CORETYPE") ? " (OPENBLAS_CORETYPE)" : "");
    rf_runners_register_builtin();
    if (cfg.test_jobs) rf_testjobs_register();
    if (!http && cfg.workers == 0) cfg.workers = 1;
    /* api_key_env can be checked at POST only where the workers run */
    rf_dataset_configure(cfg.teacher_urls, cfg.workers > 0);

    if (rf_workers_start(&cfg, &workers, &err)) return fail(&err);
    if (http) {
        /* Inference threads before the server: a completion may arrive at once. */
        if (rf_infer_start(&err) || rf_http_start(&cfg, rf_routes, &server, &err)) {
            rf_workers_stop(workers, 0);
            return fail(&err);
        }
        rf_log(RF_LOG_INFO, "listening on http://%s:%d", cfg.listen_host, rf_http_port(server));
    }

    while (sem_wait(&g_stop) && errno == EINTR) {
    }
    rf_log(RF_LOG_INFO, "%s received: shutting down", g_signal == SIGTERM ? "SIGTERM" : "SIGINT");
    if (server) rf_http_quiesce(server);
    rf_workers_stop(workers, cfg.shutdown_grace_ms);
    if (server) rf_infer_stop(); /* answers what waits; the server then drains */
    if (server) rf_http_stop(server, cfg.shutdown_grace_ms);
    rf_log(RF_LOG_INFO, "stopped");
    return 0;
}

int main(int argc, char **argv)
{
    rf_blas_core_reexec(argv);
    if (argc < 2) return usage(stderr);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) return usage(stdout);
    if (!strcmp(cmd, "serve")) return cmd_serve(true);
    if (!strcmp(cmd, "worker")) return cmd_serve(false);
    if (!strcmp(cmd, "migrate")) return cmd_migrate();
    if (!strcmp(cmd, "keys")) return cmd_keys(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize")) return rf_cmd_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "forward")) return rf_cmd_forward(argc - 1, argv + 1);
    if (!strcmp(cmd, "run")) return rf_cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "watch")) return rf_cmd_watch(argc - 1, argv + 1);
    if (!strcmp(cmd, "sample")) return rf_cmd_sample(argc - 1, argv + 1);
    if (!strcmp(cmd, "jobs") && argc > 2 && !strcmp(argv[2], "watch"))
        return rf_cmd_watch(argc - 2, argv + 2);
    if (!strcmp(cmd, "generate")) return rf_cmd_generate(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return rf_cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "report")) return rf_cmd_report(argc - 1, argv + 1);
    fprintf(stderr, "refinery: unknown command '%s'\n", cmd);
    return usage(stderr);
}
