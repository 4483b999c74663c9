/* serve.c - `agentcompress serve`: the OpenAI-compatible HTTP server. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include "cli/cli.h"
#include "common/common.h"
#include "server/server.h"

#define CMD "serve"
#define DEFAULT_MODEL "models/SmolLM2-135M-Instruct.Q4_1.gguf"

static void help(void) {
    printf("usage: agentcompress serve -m MODEL.gguf [options]\n"
           "       agentcompress serve -V VARIANTS_DIR [-c CONTROLLER.gguf] [options]\n\n"
           "Serves the model over an OpenAI-compatible HTTP API: POST /v1/chat/completions,\n"
           "POST /v1/completions (both stream with \"stream\": true), GET /v1/models,\n"
           "GET /health, GET /metrics (Prometheus). SIGINT/SIGTERM stop accepting,\n"
           "finish the requests already received, and exit 0.\n\n"
           "  -m, --model FILE         GGUF model (default: " DEFAULT_MODEL ")\n"
           "  -V DIR                   serve a variants directory through the variant cache;\n"
           "                           model \"agentcompress\" (or none) is routed, a variant\n"
           "                           name runs on that variant\n"
           "  -c, --controller FILE    route with this controller (with -V)\n"
           "      --variant NAME       where routed requests go without a controller\n"
           "                           (default: the manifest's first variant)\n"
           "      --mem-budget SIZE    variant cache budget, e.g. 512M (default: two variants)\n"
           "      --telemetry FILE     log every request (decision, tokens, bytes, time) to SQLite\n"
           "      --telemetry-fidelity RATE  measure the fidelity of this fraction (0..1, default 0)\n"
           "                           of requests against the f16 variant, in the background\n"
           "                           after the answer (with -V; the file then trains a\n"
           "                           controller: agentcompress train --profile FILE)\n"
           "      --host ADDR          address to bind (default 127.0.0.1; 0.0.0.0: all)\n"
           "      --port N             TCP port, 0 = any free one (default 8080)\n"
           "      --api-key KEY        require Authorization: Bearer KEY (default: the\n"
           "                           AGENTCOMPRESS_API_KEY environment variable, if set)\n"
           "  -t, --threads N          inference threads (default: number of cores)\n"
           "      --ctx-size N         context positions per request, prompt + answer\n"
           "                           (default: the model's, up to 4096)\n"
           "      --prompt-cache N     contexts kept between requests (default 1): a request\n"
           "                           runs only what its prompt adds to a kept context's on\n"
           "                           the same configuration (usage.prompt_tokens_details.\n"
           "                           cached_tokens); each holds --ctx-size positions of KV\n"
           "                           cache, 0 = a fresh context per request\n"
           "      --max-body BYTES     largest request body (default 1048576)\n"
           "      --max-connections N  concurrent connections (default 64)\n"
           "      --max-queue N        requests waiting for the model before 503 (default 64)\n"
           "  -q, --quiet              no per-request log lines on stderr\n"
           "  -h, --help               show this help\n");
}

int cmd_serve(int argc, char **argv) {
    const char *model_path = DEFAULT_MODEL, *host = "127.0.0.1", *api_key = getenv("AGENTCOMPRESS_API_KEY");
    const char *dir = NULL, *controller = NULL, *fixed = NULL, *telemetry = NULL;
    long port = 8080, threads = 0, n_ctx = 0, max_body = 1 << 20, max_conn = 64, max_queue = 64, prompt_cache = 1;
    size_t budget = 0;
    double fidelity_rate = 0.0;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
#define VALUE() if (!(v = cli_value(CMD, argc, argv, &i))) return 1
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { help(); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { VALUE(); model_path = v; }
        else if (!strcmp(a, "--host")) { VALUE(); host = v; }
        else if (!strcmp(a, "--port")) { VALUE(); if (cli_int(CMD, a, v, 0, 65535, &port)) return 1; }
        else if (!strcmp(a, "--api-key")) { VALUE(); api_key = v; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { VALUE(); if (cli_int(CMD, a, v, 1, 1024, &threads)) return 1; }
        else if (!strcmp(a, "--ctx-size")) { VALUE(); if (cli_int(CMD, a, v, 8, 1 << 20, &n_ctx)) return 1; }
        else if (!strcmp(a, "--prompt-cache")) { VALUE(); if (cli_int(CMD, a, v, 0, 256, &prompt_cache)) return 1; }
        else if (!strcmp(a, "-V")) { VALUE(); dir = v; }
        else if (!strcmp(a, "-c") || !strcmp(a, "--controller")) { VALUE(); controller = v; }
        else if (!strcmp(a, "--variant")) { VALUE(); fixed = v; }
        else if (!strcmp(a, "--telemetry")) { VALUE(); telemetry = v; }
        else if (!strcmp(a, "--telemetry-fidelity")) { VALUE(); if (cli_float(CMD, a, v, 0, 1, &fidelity_rate)) return 1; }
        else if (!strcmp(a, "--mem-budget")) { VALUE(); if (cli_size(CMD, a, v, &budget)) return 1; }
        else if (!strcmp(a, "--max-body")) { VALUE(); if (cli_int(CMD, a, v, 64, 1L << 30, &max_body)) return 1; }
        else if (!strcmp(a, "--max-connections")) { VALUE(); if (cli_int(CMD, a, v, 1, 10000, &max_conn)) return 1; }
        else if (!strcmp(a, "--max-queue")) { VALUE(); if (cli_int(CMD, a, v, 1, 100000, &max_queue)) return 1; }
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = true;
        else return cli_fail(CMD, "unknown option '%s' (see --help)", a);
#undef VALUE
    }

    /* Every thread started from here on inherits the blocked signals, so
     * SIGINT/SIGTERM reach only the sigwait below. A client that hangs up
     * must not kill the server with SIGPIPE. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[AC_ERR_LEN];
    struct ac_backend *backend = NULL;
    if ((controller || fixed || budget) && !dir) return cli_fail(CMD, "-c, --variant and --mem-budget need -V DIR");
    if (fidelity_rate > 0.0 && !dir) return cli_fail(CMD, "--telemetry-fidelity needs -V DIR (an f16 variant to compare with)");
    if (fidelity_rate > 0.0 && !telemetry) return cli_fail(CMD, "--telemetry-fidelity needs --telemetry FILE");
    if (dir) {
        struct ac_routed_params rp = {.dir = dir, .controller_path = controller, .fixed_variant = fixed,
                                      .mem_budget = budget, .measure_fidelity = fidelity_rate > 0.0,
                                      .n_ctx = (int)n_ctx, .n_threads = (int)threads,
                                      .prompt_cache = (int)prompt_cache};
        if (ac_backend_routed_new(&backend, &rp, err) != 0) return cli_fail(CMD, "%s", err);
        model_path = dir;
    } else {
        struct ac_single_params sp = {.n_ctx = (int)n_ctx, .n_threads = (int)threads, .prompt_cache = (int)prompt_cache};
        if (ac_backend_single_new(&backend, model_path, &sp, err) != 0) return cli_fail(CMD, "%s", err);
    }
    struct ac_server_config cfg = {
        .host = host,
        .port = (int)port,
        .api_key = api_key,
        .max_body = (size_t)max_body,
        .max_connections = (int)max_conn,
        .max_queue = (int)max_queue,
        .log = quiet ? NULL : stderr,
        .telemetry = telemetry,
        .telemetry_fidelity = fidelity_rate,
    };
    struct ac_server *srv;
    if (ac_server_start(&srv, &cfg, backend, err) != 0) {
        ac_backend_free(backend);
        return cli_fail(CMD, "%s", err);
    }
    const bool v6 = strchr(host, ':') != NULL;
    fprintf(stderr, "agentcompress: serving %s on http://%s%s%s:%d/v1 (%s)\n", model_path, v6 ? "[" : "", host,
            v6 ? "]" : "", ac_server_port(srv), api_key && *api_key ? "API key required" : "no API key");
    fflush(stderr);

    int sig = 0;
    sigwait(&stop_signals, &sig);
    fprintf(stderr, "agentcompress: %s: finishing requests in progress, then exiting\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM");
    ac_server_stop(srv);
    ac_backend_free(backend);
    return 0;
}
