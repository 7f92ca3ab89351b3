/*
 * Stand-in for rsky-ingester (the Rust AT Protocol firehose/backfill/labeler -> Redis service).
 *
 * A small static binary (`gcc -static -O2 -o ingester ingester.c`) that prints what the real
 * service prints, on the same streams, and ends the way the real service ends, so the capture
 * playbooks and the collector can be tested against a real Docker engine without Rust, a relay
 * or Redis. The output shapes follow /work/shared/reference/rsky-ingester.md and the public
 * source of rsky-ingester/src/bin/ingester.rs (branch rude1/backfill):
 *
 *   stdout  tracing-subscriber default format: RFC3339 microsecond UTC timestamp, level padded
 *           to 5, target, message; ANSI colours ON unless NO_COLOR is set (no TTY check, like
 *           the real one). A message with '\n' continues on lines with no prefix.
 *   stderr  eprintln! lines: [EXIT-TRACE] breadcrumbs, the panic banner / Rust's default panic
 *           text, and the final `Error: <message>` of main returning Err.
 *   exit    main returns Err -> 1; panic on the main thread -> 101; SIGKILL/OOM -> 137 (by the
 *           kernel: this program never exits 137 itself). Like the real PID 1 it installs no
 *           SIGTERM handler, so `docker stop` waits for the grace period and then kills it.
 *
 * Every line is written with a single write(2) as soon as it is formed: nothing sits in a
 * buffer when the process dies, so a lost line in a capture is the capture's fault.
 *
 * Environment read like the real service:
 *   INGESTER_MODE           firehose | backfill | labeler | all (default all); anything else
 *                           -> EXIT PATH I, `Unknown INGESTER_MODE: <mode>` on stdout, exit 1
 *                           (std::process::exit(1) in the real code: no `Error:` line)
 *   INGESTER_RELAY_HOSTS    comma list (default "bsky.network"), used by firehose and backfill
 *   INGESTER_LABELER_HOSTS  comma list (default empty: no labeler task, EXIT PATH G/H)
 *   REDIS_URL               printed whole in the Configuration line (secrets included, as the
 *                           real one does)
 *   INGESTER_HIGH_WATER_MARK, INGESTER_BATCH_SIZE, INGESTER_BATCH_TIMEOUT_MS  shown in config
 *   METRICS_PORT            default 4100; not a valid port -> main-thread panic, exit 101
 *   RUST_BACKTRACE          1|full: backtrace after `Error:` (anyhow) and in default panics
 *   NO_COLOR                set: no ANSI escapes on stdout
 *
 * Stand-in-only environment:
 *   STANDIN_INSTRUMENTED    1 (default): the debug build: [EXIT-TRACE] lines, panic hook banner.
 *                           0: the production build: no [EXIT-TRACE] at all, Rust's default
 *                           panic text (`thread '...' panicked at file:line:col:`).
 *   STANDIN_SCENARIO        healthy (default) | task-error | task-panic | host-panic |
 *                           main-panic | task-ok | oom | leak | impossible | silent-exit | idle
 *   STANDIN_TASK            firehose | backfill | labeler: the family that ends (default labeler
 *                           when labeler hosts are set, else firehose; single modes: the mode)
 *   STANDIN_EXIT_AFTER_MS   delay after start-up before the scenario's exit (default 3000)
 *   STANDIN_ERROR           Debug text of the error in task-error (default
 *                           WebSocket(ConnectionClosed))
 *   STANDIN_NUMBERED        N > 0: after start-up print N lines `[SEQ] run=<id> n=<k>`
 *                           alternating stdout (odd k) / stderr (even k) as fast as possible,
 *                           then `[SEQ] run=<id> done total=N` on stdout; <id> is 8 random hex
 *                           digits, new for every run (the PID is always 1 in a container)
 *   STANDIN_OOM_STEP_MB     oom: MiB allocated and touched per step (default 8)
 *   STANDIN_OOM_STEP_MS     oom: milliseconds between steps (default 200)
 *   STANDIN_LEAK_KB_PER_S   leak: KiB allocated and touched per second (default 512)
 *
 * Scenarios:
 *   healthy      never exits; processing lines from every running family every 0.5-1 s, now
 *                and then a WARN reconnect and an ERROR with a `Retrying in 5 seconds...`
 *                continuation line.
 *   task-error   every host task of the family returns Err -> run_<family> returns Err ->
 *                all mode: select fires (D/E/F, or G/H without labeler), exit 1;
 *                single mode: `?` returns before the A/B/C line, exit 1.
 *   task-panic   the spawned family task panics -> result Err(JoinError::Panic(Id(6), ..)),
 *                exit 1; in a single mode the family runs on the main thread: exit 101.
 *   host-panic   every host task of the family panics, run_<family> logs each JoinError and
 *                returns Err -> result Ok(Err(...)), exit 1.
 *   main-panic   panic on the main thread, exit 101.
 *   task-ok      run_<family> returns Ok(()) -> result Ok(Ok(())) (all mode) or EXIT PATH A/B/C
 *                (single mode), exit 1.
 *   oom          backpressure/memory lines while allocating and touching memory until the
 *                cgroup OOM killer ends it (never exits by itself).
 *   leak         healthy, plus slow memory growth; never exits by itself.
 *   impossible   EXIT PATH Z, exit 1.
 *   silent-exit  exit 1 without logging anything (the production mystery).
 *   idle         prints one line and sleeps forever; exits 0 on SIGTERM (a stand-in for the
 *                redis sidecar, so `docker compose down` does not wait for the grace period).
 *
 * argv: `--healthcheck` exits 0 (compose healthcheck); `--version` prints a version line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_LEN 8192
#define MAX_HOSTS 32
#define EQ80 "================================================================================"
#define PANIC_UNWRAP "called `Option::unwrap()` on a `None` value"

enum level { L_ERROR, L_WARN, L_INFO };

static int g_color = 1;
static int g_instrumented = 1;
static int g_backtrace; /* RUST_BACKTRACE asks for backtraces */
static int g_first_panic = 1;

/* ---------------------------------------------------------------- output primitives --- */

/* Write all of buf to fd, retrying on EINTR/short writes: one line, one write when possible. */
static void write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* eprintln!: one formatted line (a trailing newline is added) on stderr. */
static void eprintln(const char *fmt, ...) {
    char buf[LINE_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n > sizeof buf - 2) n = (int)(sizeof buf - 2);
    buf[n++] = '\n';
    write_all(2, buf, (size_t)n);
}

/* println! on stdout, no tracing prefix (used by the numbered mode). */
static void outln(const char *fmt, ...) {
    char buf[LINE_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n > sizeof buf - 2) n = (int)(sizeof buf - 2);
    buf[n++] = '\n';
    write_all(1, buf, (size_t)n);
}

/* tracing's default formatter: `<ts> <LEVEL> <target>: <message>` on stdout. */
static void tlog(enum level lvl, const char *target, const char *fmt, ...) {
    static const char *names[] = {"ERROR", " WARN", " INFO"};
    static const char *colors[] = {"\x1b[31m", "\x1b[33m", "\x1b[32m"};
    char ts[96], msg[LINE_MAX_LEN], buf[LINE_MAX_LEN + 256];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int n;
    if (g_color)
        n = snprintf(buf, sizeof buf - 1,
                     "\x1b[2m%s\x1b[0m %s%s\x1b[0m \x1b[2m%s\x1b[0m\x1b[2m:\x1b[0m %s", ts,
                     colors[lvl], names[lvl], target, msg);
    else
        n = snprintf(buf, sizeof buf - 1, "%s %s %s: %s", ts, names[lvl], target, msg);
    if (n < 0) return;
    if ((size_t)n > sizeof buf - 2) n = (int)(sizeof buf - 2);
    buf[n++] = '\n';
    write_all(1, buf, (size_t)n);
}

/* An [EXIT-TRACE] breadcrumb on stderr; the production build has none. */
static void trace(const char *fmt, ...) {
    if (!g_instrumented) return;
    char msg[LINE_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    eprintln("[EXIT-TRACE] %s", msg);
}

static void sleep_ms(long ms) {
    if (ms <= 0) return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

static long env_long(const char *name, long dflt) {
    const char *v = getenv(name);
    if (!v || !*v) return dflt;
    char *end;
    long r = strtol(v, &end, 10);
    return (*end == '\0' && r >= 0) ? r : dflt;
}

static const char *env_str(const char *name, const char *dflt) {
    const char *v = getenv(name);
    return v ? v : dflt;
}

static uint32_t random_u32(void) {
    uint32_t r;
    if (getrandom(&r, sizeof r, 0) == (ssize_t)sizeof r) return r;
    /* No entropy source: time and pid still differ between runs. */
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (uint32_t)(t.tv_nsec ^ (t.tv_sec << 8) ^ getpid());
}

/* -------------------------------------------------------------------- the families --- */

struct family {
    const char *name;   /* firehose */
    const char *title;  /* Firehose */
    const char *target; /* rsky_ingester::firehose */
    const char *type;   /* FirehoseIngester */
    char *hosts[MAX_HOSTS];
    int nhosts;
};

static struct family g_fams[3] = {
    {"firehose", "Firehose", "rsky_ingester::firehose", "FirehoseIngester", {0}, 0},
    {"backfill", "Backfill", "rsky_ingester::backfill", "BackfillIngester", {0}, 0},
    {"labeler", "Labeler", "rsky_ingester::labeler", "LabelerIngester", {0}, 0},
};
enum { F_FIREHOSE, F_BACKFILL, F_LABELER };

/* Split a comma list like the real load_config: trim, drop empty entries. */
static int split_hosts(const char *list, char **out) {
    int n = 0;
    char *copy = strdup(list);
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok && n < MAX_HOSTS;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ' || *tok == '\t') tok++;
        char *end = tok + strlen(tok);
        while (end > tok && (end[-1] == ' ' || end[-1] == '\t')) *--end = '\0';
        if (*tok) out[n++] = tok;
    }
    return n;
}

/* Render a Vec<String> Debug: ["a", "b"]. */
static void debug_vec(char *buf, size_t size, char **items, int n) {
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < n && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s\"%s\"", i ? ", " : "", items[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
}

/* ------------------------------------------------------------ panics and main's Err --- */

/* Print a panic the way the running build would: the instrumented build's hook banner, or
 * Rust's default hook text. */
static void print_panic(const char *thread, const char *location, const char *message) {
    if (g_instrumented) {
        eprintln("\n" EQ80);
        eprintln("FATAL PANIC OCCURRED");
        eprintln(EQ80);
        eprintln("Location: %s", location);
        eprintln("Message: %s", message);
        eprintln("\nThis is a critical error that should never occur in production.");
        eprintln("Please report this issue with the complete log output.");
        eprintln(EQ80 "\n");
        eprintln("Backtrace:\nBacktrace [{ fn: \"std::backtrace::Backtrace::force_capture\", "
                 "file: \"/rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library/std/src/"
                 "backtrace.rs\", line: 312 }, { fn: \"ingester::main::{{closure}}::{{closure}}\","
                 " file: \"./rsky-ingester/src/bin/ingester.rs\", line: 61 }, { fn: "
                 "\"std::panicking::rust_panic_with_hook\", file: \"/rustc/90b35a6239c3d8bdabc530"
                 "a6a0816f7ff89a0aaf/library/std/src/panicking.rs\", line: 836 }]");
        eprintln(EQ80 "\n");
        return;
    }
    eprintln("\nthread '%s' panicked at %s:\n%s", thread, location, message);
    if (g_backtrace) {
        eprintln("stack backtrace:\n"
                 "   0: rust_begin_unwind\n"
                 "             at /rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library/std/"
                 "src/panicking.rs:665:5\n"
                 "   1: core::panicking::panic_fmt\n"
                 "             at /rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library/core/"
                 "src/panicking.rs:74:14\n"
                 "   2: core::panicking::panic\n"
                 "             at /rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library/core/"
                 "src/panicking.rs:148:5\n"
                 "   3: core::option::unwrap_failed\n"
                 "             at /rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library/core/"
                 "src/option.rs:2015:5\n"
                 "note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose "
                 "backtrace.");
    } else if (g_first_panic) {
        /* Rust prints this hint only with the first panic of the process. */
        eprintln("note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace");
    }
    g_first_panic = 0;
}

/* main returned Err: Rust prints `Error: <Debug>` on stderr (anyhow adds a backtrace when
 * RUST_BACKTRACE is set) and the process exits 1. */
static void main_returns_err(const char *message) {
    eprintln("Error: %s", message);
    if (g_backtrace)
        eprintln("\nStack backtrace:\n"
                 "   0: anyhow::error::<impl anyhow::Error>::msg\n"
                 "             at /usr/local/cargo/registry/src/index.crates.io-6f17d22bba15001f/"
                 "anyhow-1.0.98/src/backtrace.rs:27:14\n"
                 "   1: ingester::main::{{closure}}\n"
                 "             at ./rsky-ingester/src/bin/ingester.rs:152:32\n"
                 "   2: tokio::runtime::park::CachedParkThread::block_on\n"
                 "             at /usr/local/cargo/registry/src/index.crates.io-6f17d22bba15001f/"
                 "tokio-1.47.1/src/runtime/park.rs:285:63\n"
                 "   3: ingester::main\n"
                 "             at ./rsky-ingester/src/bin/ingester.rs:13:1");
    exit(1);
}

/* A panic on the main thread ends the process with 101. */
static void main_thread_panic(const char *location, const char *message) {
    print_panic("main", location, message);
    exit(101);
}

/* ------------------------------------------------------------------- normal activity --- */

static long g_tick;
static long g_cursor = 4271853120L;

/* One round of ordinary processing lines for the running families. The first WARN and
 * ERROR come in rounds 1 and 2, so a run of a couple of seconds shows both shapes. */
static void activity(const int *running) {
    g_tick++;
    if (running[F_FIREHOSE]) {
        struct family *f = &g_fams[F_FIREHOSE];
        tlog(L_INFO, f->target, "Write task received batch of 500 events");
        g_cursor += 500 + (long)(random_u32() % 200);
        if (g_tick % 7 == 1 && f->nhosts)
            tlog(L_WARN, f->target,
                 "FirehoseIngester connection for %s closed gracefully. Reconnecting in 5 "
                 "seconds...",
                 f->hosts[g_tick % f->nhosts]);
        if (g_tick % 11 == 2 && f->nhosts)
            tlog(L_ERROR, f->target,
                 "FirehoseIngester connection error for %s: WebSocket(ConnectionClosed)\n"
                 "Retrying in 5 seconds...",
                 f->hosts[g_tick % f->nhosts]);
    }
    if (running[F_BACKFILL]) {
        tlog(L_INFO, g_fams[F_BACKFILL].target, "Processed %ld repos, cursor: did:plc:%08x%08x",
             g_tick * 10000L, random_u32(), random_u32());
    }
    if (running[F_LABELER] && g_fams[F_LABELER].nhosts) {
        struct family *f = &g_fams[F_LABELER];
        tlog(L_INFO, f->target, "Received %u labels from %s, cursor: %ld", 1 + random_u32() % 40,
             f->hosts[g_tick % f->nhosts], 91234567L + g_tick * 37);
    }
}

static char *g_leak_total;
static long g_leak_bytes;

/* Allocate and touch memory so it counts in the cgroup (untouched pages would not). */
static int grow(size_t bytes) {
    char *p = malloc(bytes);
    if (!p) return 0;
    memset(p, 0xA5, bytes);
    g_leak_total = p; /* keep a reference: the point is never to free it */
    return 1;
}

/* Run ordinary activity until deadline_ms (monotonic), or forever when deadline_ms < 0. */
static void run_until(long deadline_ms, const int *running, int leak) {
    long leak_rate = env_long("STANDIN_LEAK_KB_PER_S", 512) * 1024L;
    for (;;) {
        long left = deadline_ms < 0 ? 1000 : deadline_ms - now_ms();
        if (left <= 0) return;
        long pause = 500 + (long)(random_u32() % 501);
        if (pause > left) {
            sleep_ms(left);
            return;
        }
        sleep_ms(pause);
        activity(running);
        if (leak) {
            size_t step = (size_t)(leak_rate * pause / 1000);
            if (step && grow(step)) g_leak_bytes += (long)step;
            if (g_tick % 5 == 0)
                tlog(L_INFO, "rsky_ingester::metrics", "Memory metrics: %ld events in-flight",
                     g_leak_bytes / 1024);
        }
    }
}

/* The documented OOM: unbounded buffering under Redis backpressure. Never returns. */
static void oom_forever(void) {
    long step_mb = env_long("STANDIN_OOM_STEP_MB", 8);
    long step_ms = env_long("STANDIN_OOM_STEP_MS", 200);
    long in_memory = 250000, stream_len = 1564120;
    if (step_mb <= 0) step_mb = 1;
    for (;;) {
        if (grow((size_t)step_mb << 20))
            in_memory += step_mb * 1024L; /* about 1 KiB per buffered event */
        else
            sleep_ms(50); /* allocation refused: keep trying, the OOM killer decides */
        stream_len += 20000 + (long)(random_u32() % 5000);
        tlog(L_WARN, "rsky_ingester::batcher",
             "Backpressure active: stream_len=%ld, high_water=100000, events_in_memory=%ld",
             stream_len, in_memory);
        tlog(L_INFO, "rsky_ingester::metrics", "Memory metrics: %ld events in-flight", in_memory);
        sleep_ms(step_ms);
    }
}

static void numbered(long total) {
    char id[9];
    snprintf(id, sizeof id, "%08x", random_u32());
    for (long k = 1; k <= total; k++) {
        if (k % 2)
            outln("[SEQ] run=%s n=%ld", id, k);
        else
            eprintln("[SEQ] run=%s n=%ld", id, k);
    }
    outln("[SEQ] run=%s done total=%ld", id, total);
}

/* ----------------------------------------------------------------- the run_* functions --- */

/* Hostname without its scheme, as the wss:// and https:// URLs use it. */
static const char *bare(const char *host) {
    const char *p = strstr(host, "://");
    return p ? p + 3 : host;
}

/* Start-up lines of run_<family>: what tokio::spawn(run_<family>(config)) prints first. */
static void family_start(struct family *f) {
    tlog(L_INFO, "ingester", "Starting %s ingesters for %d hosts", f->name, f->nhosts);
    for (int i = 0; i < f->nhosts; i++) {
        tlog(L_INFO, f->target, "Starting %s for %s", f->type, f->hosts[i]);
        if (f == &g_fams[F_BACKFILL])
            tlog(L_INFO, f->target, "Fetching repos from https://%s/xrpc/com.atproto.sync.listRepos",
                 bare(f->hosts[i]));
        else
            tlog(L_INFO, f->target, "Connecting to wss://%s/xrpc/%s?cursor=%ld with cursor %ld",
                 bare(f->hosts[i]),
                 f == &g_fams[F_LABELER] ? "com.atproto.label.subscribeLabels"
                                         : "com.atproto.sync.subscribeRepos",
                 g_cursor, g_cursor);
    }
}

enum family_end { END_ERR, END_OK };

/* The body of run_<family> ending for `scenario`: logs what its host tasks and its wait loop
 * log, and says whether run_<family> returns Err (all host tasks ended) or Ok(()). */
static enum family_end family_ends(struct family *f, const char *scenario) {
    const char *err = env_str("STANDIN_ERROR", "WebSocket(ConnectionClosed)");
    for (int i = 0; i < f->nhosts; i++) {
        if (!strcmp(scenario, "host-panic")) {
            char loc[128];
            snprintf(loc, sizeof loc, "rsky-ingester/src/%s.rs:123:45", f->name);
            print_panic("tokio-runtime-worker", loc, PANIC_UNWRAP);
            tlog(L_ERROR, "ingester",
                 "CRITICAL: %s task %d panicked or was cancelled: JoinError::Panic(Id(%d), \"%s\", "
                 "..)\nThis indicates a serious error.",
                 f->title, i, 9 + i, PANIC_UNWRAP);
            continue;
        }
        if (!strcmp(scenario, "task-ok")) {
            tlog(L_ERROR, "ingester",
                 "CRITICAL: %s ingester for %s exited successfully but should never exit!\n"
                 "This indicates a logic error in the code.",
                 f->title, f->hosts[i]);
        } else {
            tlog(L_ERROR, f->target, "%s connection error for %s: %s", f->type, f->hosts[i], err);
            tlog(L_ERROR, "ingester",
                 "CRITICAL: %s ingester for %s exited with error: %s\n"
                 "This task should never exit. Investigate immediately.",
                 f->title, f->hosts[i], err);
        }
        tlog(L_ERROR, "ingester",
             "CRITICAL: %s task %d completed unexpectedly. Tasks should run forever.", f->title, i);
    }
    /* task-ok models a build whose run_<family> returns Ok(()) (investigation scenario 3);
     * the published code returns Err once every host task has ended. */
    return strcmp(scenario, "task-ok") ? END_ERR : END_OK;
}

/* ------------------------------------------------------------------------------ main --- */

static void on_sigterm(int sig) {
    (void)sig;
    _exit(0);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--healthcheck")) return 0;
        if (!strcmp(argv[i], "--version")) {
            outln("ingester 0.1.0 (rsky-ingester stand-in)");
            return 0;
        }
    }
    g_color = getenv("NO_COLOR") == NULL;
    g_instrumented = env_long("STANDIN_INSTRUMENTED", 1) != 0;
    const char *bt = env_str("RUST_BACKTRACE", "");
    g_backtrace = *bt && strcmp(bt, "0") != 0;
    const char *scenario = env_str("STANDIN_SCENARIO", "healthy");
    long exit_after = env_long("STANDIN_EXIT_AFTER_MS", 3000);

    if (!strcmp(scenario, "idle")) {
        signal(SIGTERM, on_sigterm);
        tlog(L_INFO, "standin", "idle sidecar ready; sleeping until stopped");
        for (;;) pause();
    }
    static const char *known[] = {"healthy", "task-error", "task-panic", "host-panic",
                                  "main-panic", "task-ok", "oom", "leak", "impossible",
                                  "silent-exit", NULL};
    int ok = 0;
    for (int i = 0; known[i]; i++) ok |= !strcmp(known[i], scenario);
    if (!ok) {
        eprintln("standin: unknown STANDIN_SCENARIO %s", scenario);
        return 2;
    }

    long start = now_ms();
    tlog(L_INFO, "ingester", "Starting rsky-ingester");
    tlog(L_INFO, "ingester", "Metrics initialized");

    const char *port = env_str("METRICS_PORT", "4100");
    char *end;
    long port_n = strtol(port, &end, 10);
    if (!*port || *end || port_n < 0 || port_n > 65535)
        main_thread_panic("rsky-ingester/src/bin/ingester.rs:77:10",
                          "METRICS_PORT must be a valid port number: ParseIntError { kind: "
                          "InvalidDigit }");

    const char *redis_url = env_str("REDIS_URL", "redis://localhost:6379");
    g_fams[F_FIREHOSE].nhosts =
        split_hosts(env_str("INGESTER_RELAY_HOSTS", "bsky.network"), g_fams[F_FIREHOSE].hosts);
    g_fams[F_BACKFILL].nhosts = g_fams[F_FIREHOSE].nhosts;
    memcpy(g_fams[F_BACKFILL].hosts, g_fams[F_FIREHOSE].hosts, sizeof g_fams[0].hosts);
    g_fams[F_LABELER].nhosts =
        split_hosts(env_str("INGESTER_LABELER_HOSTS", ""), g_fams[F_LABELER].hosts);
    char relays[2048], labelers[2048];
    debug_vec(relays, sizeof relays, g_fams[F_FIREHOSE].hosts, g_fams[F_FIREHOSE].nhosts);
    debug_vec(labelers, sizeof labelers, g_fams[F_LABELER].hosts, g_fams[F_LABELER].nhosts);
    tlog(L_INFO, "ingester", "Metrics server starting on port %ld", port_n);
    tlog(L_INFO, "ingester",
         "Configuration: IngesterConfig { redis_url: \"%s\", relay_hosts: %s, labeler_hosts: %s, "
         "high_water_mark: %ld, batch_size: %ld, batch_timeout_ms: %ld }",
         redis_url, relays, labelers, env_long("INGESTER_HIGH_WATER_MARK", 100000),
         env_long("INGESTER_BATCH_SIZE", 500), env_long("INGESTER_BATCH_TIMEOUT_MS", 1000));

    const char *mode = env_str("INGESTER_MODE", "all");
    int single = -1;
    if (!strcmp(mode, "firehose")) single = F_FIREHOSE;
    else if (!strcmp(mode, "backfill")) single = F_BACKFILL;
    else if (!strcmp(mode, "labeler")) single = F_LABELER;
    else if (strcmp(mode, "all") != 0) {
        /* The real code: eprintln!, error!, std::process::exit(1) - no `Error:` line. */
        trace("Unknown INGESTER_MODE: %s - EXIT PATH I", mode);
        tlog(L_ERROR, "ingester", "Unknown INGESTER_MODE: %s", mode);
        exit(1);
    }

    int running[3] = {0, 0, 0};
    int has_labeler = g_fams[F_LABELER].nhosts > 0;
    int ending; /* the family whose run_* ends in an exit scenario */
    if (single >= 0) {
        trace("About to run %s mode", mode);
        running[single] = 1;
        ending = single;
        if (single == F_LABELER && !has_labeler) {
            /* run_labeler without hosts sleeps forever: nothing can end it. */
            tlog(L_INFO, "ingester", "No labeler hosts configured, sleeping forever to keep task "
                                     "alive");
            running[single] = 0;
            ending = -1;
        } else {
            family_start(&g_fams[single]);
        }
    } else {
        trace("Running in 'all' mode");
        trace("Spawning firehose and backfill tasks");
        running[F_FIREHOSE] = running[F_BACKFILL] = 1;
        family_start(&g_fams[F_FIREHOSE]);
        family_start(&g_fams[F_BACKFILL]);
        if (has_labeler) {
            trace("Spawning labeler task (hosts configured)");
            running[F_LABELER] = 1;
            family_start(&g_fams[F_LABELER]);
            trace("Entering tokio::select! with all three tasks");
        } else {
            trace("No labeler hosts configured");
            tlog(L_INFO, "ingester", "No labeler hosts configured, skipping labeler ingester");
            trace("Entering tokio::select! with firehose and backfill only");
        }
        const char *task = getenv("STANDIN_TASK");
        if (!task || !*task) task = has_labeler ? "labeler" : "firehose";
        if (!strcmp(task, "firehose")) ending = F_FIREHOSE;
        else if (!strcmp(task, "backfill")) ending = F_BACKFILL;
        else if (!strcmp(task, "labeler") && has_labeler) ending = F_LABELER;
        else {
            eprintln("standin: STANDIN_TASK=%s cannot end in this configuration", task);
            return 2;
        }
    }

    long numbered_total = env_long("STANDIN_NUMBERED", 0);
    if (numbered_total > 0) numbered(numbered_total);

    if (!strcmp(scenario, "oom")) oom_forever();
    /* Scenarios that end main itself need no family; the others need one that can end. */
    int main_ends = !strcmp(scenario, "main-panic") || !strcmp(scenario, "impossible") ||
                    !strcmp(scenario, "silent-exit");
    int exits = strcmp(scenario, "healthy") && strcmp(scenario, "leak") &&
                (ending >= 0 || main_ends);
    run_until(exits ? start + exit_after : -1, running, !strcmp(scenario, "leak"));

    /* ------------------------------------------------------------ the scenario's end --- */
    if (!strcmp(scenario, "silent-exit")) exit(1);
    if (!strcmp(scenario, "main-panic"))
        main_thread_panic("rsky-ingester/src/bin/ingester.rs:152:38",
                          "called `Result::unwrap()` on an `Err` value: Os { code: 24, kind: "
                          "Uncategorized, message: \"Too many open files\" }");
    if (!strcmp(scenario, "impossible")) {
        trace("IMPOSSIBLE: Reached end of main() after match - EXIT PATH Z");
        if (g_instrumented)
            tlog(L_ERROR, "ingester",
                 "[EXIT-TRACE] IMPOSSIBLE: Reached end of main() after match - EXIT PATH Z");
        main_returns_err("IMPOSSIBLE: reached end of main() after match");
    }

    struct family *f = &g_fams[ending];
    char loc[128], result[1024];
    snprintf(loc, sizeof loc, "rsky-ingester/src/%s.rs:123:45", f->name);

    if (single >= 0) {
        /* run_<family>(config).await? runs on the main thread in a single mode. */
        if (!strcmp(scenario, "task-panic")) main_thread_panic(loc, PANIC_UNWRAP);
        if (family_ends(f, scenario) == END_ERR) {
            char msg[256];
            snprintf(msg, sizeof msg, "CRITICAL: All %s tasks exited. This should never happen.",
                     f->name);
            main_returns_err(msg); /* `?` returns before the A/B/C breadcrumb */
        }
        static const char letters[] = {'A', 'B', 'C'};
        trace("%s mode exited - EXIT PATH %c", f->title, letters[single]);
        if (g_instrumented)
            tlog(L_ERROR, "ingester", "[EXIT-TRACE] %s mode exited - EXIT PATH %c", f->title,
                 letters[single]);
        char msg[256];
        snprintf(msg, sizeof msg, "CRITICAL: %s mode exited unexpectedly", f->title);
        main_returns_err(msg);
    }

    if (!strcmp(scenario, "task-panic")) {
        print_panic("tokio-runtime-worker", loc, PANIC_UNWRAP);
        snprintf(result, sizeof result, "Err(JoinError::Panic(Id(6), \"%s\", ..))", PANIC_UNWRAP);
    } else if (family_ends(f, scenario) == END_OK) {
        snprintf(result, sizeof result, "Ok(Ok(()))");
    } else {
        snprintf(result, sizeof result,
                 "Ok(Err(CRITICAL: All %s tasks exited. This should never happen.))", f->name);
    }

    char path[160];
    static const char letters3[] = {'D', 'E', 'F'};
    static const char letters2[] = {'G', 'H'};
    if (has_labeler)
        snprintf(path, sizeof path, "tokio::select! triggered on %s_handle - EXIT PATH %c",
                 f->name, letters3[ending]);
    else
        snprintf(path, sizeof path,
                 "tokio::select! triggered on %s_handle (no labeler) - EXIT PATH %c", f->name,
                 letters2[ending]);
    trace("%s", path);
    trace("%s result: %s", f->title, result);
    if (g_instrumented) tlog(L_ERROR, "ingester", "[EXIT-TRACE] %s", path);
    tlog(L_ERROR, "ingester", "%s ingester exited: %s", f->title, result);
    char msg[256];
    snprintf(msg, sizeof msg,
             "CRITICAL: %s ingester exited unexpectedly. This should never happen. Check logs for "
             "details.",
             f->title);
    main_returns_err(msg);
    return 1; /* not reached */
}
