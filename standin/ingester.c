/*
 * Stand-in for rsky-ingester (the Rust AT Protocol firehose/backfill/labeler -> Redis service).
 *
 * A small static binary (`gcc -static -O2 -o ingester ingester.c`) that prints what the real
 * service prints, on the same streams, and ends the way the real service ends, so the capture
 * playbooks and the collector can be tested against a real Docker engine without Rust, a relay
 * or Redis. Its default behaviour per fault is what the real code does, read from the public
 * source (blacksky-algorithms/rsky, crate rsky-ingester, src/bin/ingester.rs and the three
 * ingesters at 13f9a6b7, 2f7ec42a and b6b44b4f); the strings are copied from there.
 *
 *   stdout  tracing-subscriber default format: RFC3339 microsecond UTC timestamp, level padded
 *           to 5, target, message; ANSI colours ON unless NO_COLOR is set (no TTY check, like
 *           the real one). A message with '\n' continues on lines with no prefix. Filtered by
 *           RUST_LOG like EnvFilter (default `ingester=info,rsky_ingester=info`).
 *   stderr  eprintln! lines: [EXIT-TRACE] breadcrumbs (debug build), the panic banner or Rust's
 *           default panic text, and the final `Error: <Debug>` of main returning Err.
 *   exit    main returns Err -> 1; main returns Ok -> 0 (oldest build); panic on the main
 *           thread -> 101; std::process::exit(1) -> 1; SIGKILL/OOM -> 137 (by the kernel: this
 *           program never exits 137 itself). Like the real PID 1 it installs no SIGTERM
 *           handler, so `docker stop` waits for the grace period and then kills it.
 *
 * Every line is written with a single write(2) as soon as it is formed: nothing sits in a
 * buffer when the process dies, so a lost line in a capture is the capture's fault.
 *
 * Build generations (STANDIN_BUILD; resolved as: STANDIN_SOURCE_BUILD, set by the image built
 * from the rsky source tree, then STANDIN_BUILD, then the legacy STANDIN_INSTRUMENTED=1|0 as
 * debug|hook, then `hook`):
 *   oldest  b6b44b4f, before 38694b2f: no panic hook (Rust's default `thread '..' panicked at`
 *           text), a host task's panic is swallowed (`let _ = task.await`), run_* returns
 *           Ok(()), select logs `X ingester exited: Ok(Ok(()))` and main returns Ok: exit 0.
 *           Connection errors read `XIngester error for H: <Debug>` with no retry line.
 *   hook    2f7ec42a (production): the panic hook banner, the CRITICAL lines, no [EXIT-TRACE],
 *           no metrics server (METRICS_PORT is not read).
 *   debug   13f9a6b7 (the instrumented build the capture makes): [EXIT-TRACE] breadcrumbs on
 *           stderr (the select ones also as error! lines), `Metrics initialized`, METRICS_PORT.
 *
 * Environment read like the real service:
 *   INGESTER_MODE           firehose | backfill | labeler | all (default all); anything else:
 *                           `Unknown INGESTER_MODE: <mode>` then std::process::exit(1)
 *   INGESTER_RELAY_HOSTS    comma list (default "bsky.network"; "" gives 0 hosts)
 *   INGESTER_LABELER_HOSTS  comma list (default empty: no labeler task in all mode)
 *   REDIS_URL               printed whole in the Configuration line (password included, as
 *                           the real one does); checked like redis-rs Client::open: a URL
 *                           without a redis://, rediss://, redis+unix:// or unix:// scheme is
 *                           `Redis URL did not parse- InvalidClientConfig`, a redis: URL with
 *                           no host `Missing hostname- InvalidClientConfig`
 *   INGESTER_HIGH_WATER_MARK, INGESTER_BATCH_SIZE, INGESTER_BATCH_TIMEOUT_MS  shown in config
 *   METRICS_PORT            debug build: default 4100; not a u16 -> main-thread panic, 101
 *   RUST_LOG                EnvFilter directives (`warn` hides every INFO line)
 *   RUST_BACKTRACE          set and not 0: anyhow's `Stack backtrace:` after errors, Rust's
 *                           `stack backtrace:` in default panics, a long hook Backtrace line
 *   NO_COLOR                set: no ANSI escapes on stdout
 *
 * Stand-in-only environment:
 *   STANDIN_SCENARIO        see below (default healthy)
 *   STANDIN_FAMILY          firehose | backfill | labeler: the family whose host tasks panic in
 *                           all-panicked / contained-panic (default firehose; STANDIN_TASK is
 *                           read when it is unset)
 *   STANDIN_PANIC_HOST      contained-panic: index of the host task that panics (default 1)
 *   STANDIN_PANIC_LOCATION  panic location (default rsky-ingester/src/<family>.rs:123:45)
 *   STANDIN_PANIC_MESSAGE   panic message (default called `Option::unwrap()` on a `None` value)
 *   STANDIN_EXIT_AFTER_MS   delay after start-up before the first panic / the exit (default 3000)
 *   STANDIN_RETRY_MS        retry-errors: delay between attempts (default 5000; backfill 6x)
 *   STANDIN_ERROR           Debug text of the connection error (retry-errors default
 *                           Redis(Connection refused (os error 111)); hypothetical-task-error
 *                           default WebSocket(ConnectionClosed))
 *   STANDIN_BACKTRACE_FRAMES frames in the hook's Backtrace line (default 24 with
 *                           RUST_BACKTRACE set, else 3; about 175 bytes a frame: 100 pass 16 KiB)
 *   STANDIN_NUMBERED        N > 0: after start-up print N lines `[SEQ] run=<id> n=<k>`
 *                           alternating stdout (odd k) / stderr (even k) as fast as possible,
 *                           then `[SEQ] run=<id> done total=N` on stdout; <id> is 8 random hex
 *                           digits, new for every run (the PID is always 1 in a container)
 *   STANDIN_OOM_STEP_MB     oom: MiB allocated and touched per step (default 8)
 *   STANDIN_OOM_STEP_MS     oom: milliseconds between steps (default 200)
 *   STANDIN_LEAK_KB_PER_S   leak: KiB allocated and touched per second (default 512)
 *   STANDIN_TASK            hypothetical-*: the family that ends (default labeler when labeler
 *                           hosts are set, else firehose; single modes: the mode)
 *
 * Scenarios that follow the real code (the configuration errors need no scenario: set the
 * variable; the config-* names only document intent):
 *   healthy          never exits; processing lines every 0.5-1 s, now and then a WARN
 *                    reconnect and a retried connection error.
 *   retry-errors     every connection fails (Redis refused): each host task logs
 *                    `XIngester connection error for H: <Debug>` + `Retrying in 5 seconds...`
 *                    and tries again, forever; the process never exits.
 *   all-panicked     every host task of STANDIN_FAMILY panics (in random order, a few hundred
 *                    ms apart): a banner per panic; run_<family> awaits its tasks in order and
 *                    logs `CRITICAL: X task i panicked or was cancelled: JoinError::Panic(Id(n),
 *                    "msg", ...)` + `This indicates a serious error.` per task in task order,
 *                    then returns Err(All x tasks exited); select (all mode) or `?` (single
 *                    mode) ends main: exit 1. Oldest build: default panic text, exit 0.
 *   contained-panic  host task STANDIN_PANIC_HOST of the family panics; the others keep running,
 *                    so run_<family> never gets past the task it awaits: the process runs on.
 *   config-redis-url, config-no-relays, config-unknown-mode, config-metrics-port: the healthy
 *                    behaviour; the fault comes from REDIS_URL, INGESTER_RELAY_HOSTS="",
 *                    INGESTER_MODE or METRICS_PORT (the stack sets them for these names).
 *   binary-cannot-start the dynamic loader's glibc error on stderr, exit 1, no Rust output
 *                    (the image built from the source tree starts: healthy there).
 *   oom              backpressure/memory lines while allocating and touching memory until the
 *                    cgroup OOM killer ends it (never exits by itself).
 *   leak             healthy, plus slow memory growth; never exits by itself.
 *   idle             prints one line and sleeps forever; exits 0 on SIGTERM (a stand-in for the
 *                    redis sidecar, so `docker compose down` does not wait for the grace period).
 * Hypothetical scenarios (the old seed's paths; a code change could make them real):
 *   hypothetical-task-error   every host task returns Err (CRITICAL .. exited with error) ->
 *                    run_<family> returns Err -> select D/E/F (G/H), exit 1.
 *   hypothetical-task-panic   run_<family> itself panics -> Err(JoinError::Panic(Id(6), ..)), exit
 *                    1; single mode: exit 101.
 *   hypothetical-host-panic   the seed's host-panic: banner and CRITICAL interleaved per host.
 *   hypothetical-main-panic   a panic on the main thread ("Too many open files"), exit 101.
 *   hypothetical-task-ok      run_<family> returns Ok(()) -> Ok(Ok(())) / EXIT PATH A/B/C, exit 1.
 *   hypothetical-single-mode  the same in a single mode: EXIT PATH A/B/C (INGESTER_MODE firehose
 *                    when it is all).
 *   hypothetical-impossible   EXIT PATH Z, exit 1.
 *   hypothetical-silent-exit  exit 1 without logging anything.
 *   hypothetical-cancelled    like all-panicked with no panic: every host task of the family
 *                    ends as `JoinError::Cancelled(Id(n))` (nothing in the real code aborts one).
 * The seed's names (task-error, task-panic, host-panic, main-panic, task-ok, impossible,
 * silent-exit) are accepted as deprecated aliases of the hypothetical-* ones.
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

#define LINE_MAX_LEN 16384
#define MAX_HOSTS 32
#define EQ80 "================================================================================"
#define PANIC_UNWRAP "called `Option::unwrap()` on a `None` value"
#define RUSTC "/rustc/29483883eed69d5fb4db01964cdf2af4d86e9cb2/library"
#define REGISTRY "/usr/local/cargo/registry/src/index.crates.io-1949cf8c6b5b557f"

enum level { L_ERROR, L_WARN, L_INFO, L_DEBUG, L_TRACE };
enum build { B_OLDEST, B_HOOK, B_DEBUG };

static int g_color = 1;
static enum build g_build = B_HOOK;
static int g_backtrace; /* RUST_BACKTRACE asks for backtraces */
static int g_first_panic = 1;
static int g_cancelled; /* hypothetical-cancelled: host tasks end as JoinError::Cancelled */

/* ---------------------------------------------------------------- output primitives --- */

static long now_ms(void);
static void sleep_ms(long ms);
static int g_numbering; /* the numbered mode writes as fast as it can */

/* Write all of buf to fd, retrying on EINTR/short writes: one line, one write when possible.
 * Docker stamps each stream's lines when its own reader gets them, so two writes to different
 * streams microseconds apart can swap places in `docker logs --timestamps`; a few ms between
 * a write and the previous one to the other stream keeps the stamps in the program's order. */
static void write_all(int fd, const char *buf, size_t len) {
    static int last_fd = -1;
    static long last_ms;
    if (!g_numbering && last_fd >= 0 && fd != last_fd && now_ms() - last_ms < 5) sleep_ms(5);
    last_fd = fd;
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
    last_ms = now_ms();
}

static void vline(int fd, const char *fmt, va_list ap) {
    char buf[LINE_MAX_LEN];
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    if (n < 0) return;
    if ((size_t)n > sizeof buf - 2) n = (int)(sizeof buf - 2);
    buf[n++] = '\n';
    write_all(fd, buf, (size_t)n);
}

/* eprintln!: one formatted line (a trailing newline is added) on stderr. */
static void eprintln(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vline(2, fmt, ap);
    va_end(ap);
}

/* println! on stdout, no tracing prefix (used by the numbered mode). */
static void outln(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vline(1, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------- RUST_LOG filter --- */

struct directive {
    char target[64]; /* "" for the global level */
    int level;       /* highest enabled level, -1 for off */
};
static struct directive g_dirs[16];
static int g_ndirs;

static int parse_level(const char *s) {
    static const char *names[] = {"error", "warn", "info", "debug", "trace"};
    if (!strcasecmp(s, "off")) return -1;
    for (int i = 0; i < 5; i++)
        if (!strcasecmp(s, names[i])) return i;
    return -2;
}

/* EnvFilter::try_from_default_env, simplified: `level`, `target` and `target=level`
 * directives; a directive that does not parse is skipped (EnvFilter ignores it with a
 * warning); no RUST_LOG at all gives the real default. */
static void setup_filter(void) {
    const char *env = getenv("RUST_LOG");
    if (!env) env = "ingester=info,rsky_ingester=info";
    char *copy = strdup(env);
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok && g_ndirs < 16;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        if (!*tok) continue;
        struct directive *d = &g_dirs[g_ndirs];
        char *eq = strchr(tok, '=');
        if (eq) {
            *eq = '\0';
            int lv = parse_level(eq + 1);
            if (lv == -2) continue;
            snprintf(d->target, sizeof d->target, "%s", tok);
            d->level = lv;
        } else {
            int lv = parse_level(tok);
            if (lv == -2) {
                snprintf(d->target, sizeof d->target, "%s", tok);
                d->level = L_TRACE;
            } else {
                d->target[0] = '\0';
                d->level = lv;
            }
        }
        g_ndirs++;
    }
    free(copy);
}

/* The most specific directive whose target is a module-path prefix of `target` decides. */
static int log_enabled(enum level lvl, const char *target) {
    int best = -1, best_len = -1;
    for (int i = 0; i < g_ndirs; i++) {
        size_t n = strlen(g_dirs[i].target);
        if (n && (strncmp(target, g_dirs[i].target, n) != 0 ||
                  (target[n] != '\0' && target[n] != ':')))
            continue;
        if ((int)n > best_len) {
            best_len = (int)n;
            best = i;
        }
    }
    if (best < 0) return 0;
    return (int)lvl <= g_dirs[best].level;
}

/* tracing's default formatter: `<ts> <LEVEL> <target>: <message>` on stdout. */
static void tlog(enum level lvl, const char *target, const char *fmt, ...) {
    static const char *names[] = {"ERROR", " WARN", " INFO", "DEBUG", "TRACE"};
    static const char *colors[] = {"\x1b[31m", "\x1b[33m", "\x1b[32m", "\x1b[34m", "\x1b[35m"};
    if (!log_enabled(lvl, target)) return;
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

/* An [EXIT-TRACE] breadcrumb on stderr; only the debug build has them. */
static void trace(const char *fmt, ...) {
    if (g_build != B_DEBUG) return;
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
    int new_line;       /* ingester.rs line of `X::new(config.clone())?` (13f9a6b7) */
    int err_line;       /* ingester.rs line of the `Err(anyhow!(All .. tasks exited))` */
    int select_line;    /* ingester.rs line of the select arm's `anyhow!` (with labeler) */
    int task_base;      /* tokio task id of the first host task */
    char *hosts[MAX_HOSTS];
    int nhosts;
    /* run state */
    int dead[MAX_HOSTS];
    long panic_at[MAX_HOSTS]; /* ms since start, -1 never */
    long next_retry[MAX_HOSTS];
    int awaited; /* index of the task run_<family> awaits */
    int running; /* spawned and not ended */
};

static struct family g_fams[3] = {
    {"firehose", "Firehose", "rsky_ingester::firehose", "FirehoseIngester", 217, 257, 160, 8,
     {0}, 0, {0}, {0}, {0}, 0, 0},
    {"backfill", "Backfill", "rsky_ingester::backfill", "BackfillIngester", 271, 311, 167, 11,
     {0}, 0, {0}, {0}, {0}, 0, 0},
    {"labeler", "Labeler", "rsky_ingester::labeler", "LabelerIngester", 333, 373, 174, 14,
     {0}, 0, {0}, {0}, {0}, 0, 0},
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

/* Rust's Debug of a str: quotes, with " and \ escaped. */
static size_t debug_str(char *buf, size_t size, const char *s) {
    size_t used = 0;
    if (used < size) buf[used++] = '"';
    for (; *s && used + 3 < size; s++) {
        if (*s == '"' || *s == '\\') buf[used++] = '\\';
        buf[used++] = *s;
    }
    if (used < size) buf[used++] = '"';
    if (used < size) buf[used] = '\0';
    return used;
}

/* Render a Vec<String> Debug: ["a", "b"]. */
static void debug_vec(char *buf, size_t size, char **items, int n) {
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < n && used + 4 < size; i++) {
        if (i) used += (size_t)snprintf(buf + used, size - used, ", ");
        used += debug_str(buf + used, size - used, items[i]);
    }
    if (used < size) snprintf(buf + used, size - used, "]");
}

/* --------------------------------------------------------------- backtraces and errors --- */

/* std's Backtrace Display (what anyhow prints after `Stack backtrace:`): frames below the
 * error's construction in `func` at ./rsky-ingester/src/bin/ingester.rs:`line`. */
static size_t std_backtrace(char *buf, size_t size, const char *func, int line, int on_main,
                            int converted) {
    size_t used = 0;
#define BT(...) used += (size_t)snprintf(buf + used, used < size ? size - used : 0, __VA_ARGS__)
    if (converted) /* `?` on a std error: anyhow's From impl captured the backtrace */
        BT("   0: <anyhow::Error as core::convert::From<E>>::from\n"
           "             at " REGISTRY "/anyhow-1.0.99/src/backtrace.rs:27:14\n");
    else
        BT("   0: anyhow::error::<impl anyhow::Error>::msg\n"
           "             at " REGISTRY "/anyhow-1.0.99/src/backtrace.rs:27:14\n");
    BT("   1: %s\n             at ./rsky-ingester/src/bin/ingester.rs:%d:9\n", func, line);
    if (on_main) {
        BT("   2: tokio::runtime::park::CachedParkThread::block_on\n"
           "             at " REGISTRY "/tokio-1.47.1/src/runtime/park.rs:285:60\n"
           "   3: ingester::main\n"
           "             at ./rsky-ingester/src/bin/ingester.rs:12:1\n"
           "   4: core::ops::function::FnOnce::call_once\n"
           "             at " RUSTC "/core/src/ops/function.rs:253:5");
    } else {
        BT("   2: tokio::runtime::task::core::Core<T,S>::poll::{{closure}}\n"
           "             at " REGISTRY "/tokio-1.47.1/src/runtime/task/core.rs:365:24\n"
           "   3: tokio::runtime::task::harness::Harness<T,S>::poll\n"
           "             at " REGISTRY "/tokio-1.47.1/src/runtime/task/harness.rs:153:15\n"
           "   4: tokio::runtime::scheduler::multi_thread::worker::Context::run_task\n"
           "             at " REGISTRY "/tokio-1.47.1/src/runtime/scheduler/multi_thread/"
           "worker.rs:596:9\n"
           "   5: std::sys::pal::unix::thread::Thread::new::thread_start\n"
           "             at " RUSTC "/std/src/sys/pal/unix/thread.rs:97:17\n"
           "   6: start_thread\n"
           "             at ./nptl/pthread_create.c:447:8\n"
           "   7: clone3\n"
           "             at ./misc/../sysdeps/unix/sysv/linux/x86_64/clone3.S:78");
    }
#undef BT
    return used;
}

/* anyhow::Error's Debug: the message, `Caused by:` and its chain, then (RUST_BACKTRACE set)
 * `Stack backtrace:` and the frames. */
static void anyhow_debug(char *buf, size_t size, const char *msg, const char *cause,
                         const char *func, int line, int on_main) {
    size_t used = (size_t)snprintf(buf, size, "%s", msg);
    if (cause && used < size)
        used += (size_t)snprintf(buf + used, size - used, "\n\nCaused by:\n    %s", cause);
    if (g_backtrace && used < size) {
        used += (size_t)snprintf(buf + used, size - used, "\n\nStack backtrace:\n");
        if (used < size) std_backtrace(buf + used, size - used, func, line, on_main, cause != NULL);
    }
}

/* One frame of std::backtrace::Backtrace's Debug: `{ fn: "..", file: "..", line: N }`. */
static size_t bt_frame(char *buf, size_t size, const char *fn, const char *file, int line) {
    return (size_t)snprintf(buf, size, "{ fn: \"%s\", file: \"%s\", line: %d }", fn, file, line);
}

/* The hook's `Backtrace:\n{:?}` of force_capture(), in one write: a single long line. */
static void hook_backtrace(const char *location) {
    long frames = env_long("STANDIN_BACKTRACE_FRAMES", g_backtrace ? 24 : 3);
    if (frames < 3) frames = 3;
    size_t size = (size_t)(frames + 24) * 400, used = 0;
    char *buf = malloc(size);
    if (!buf) return;
    char src[128], fn[192];
    snprintf(src, sizeof src, "./%s", location);
    char *colon = strchr(src, ':');
    int line = colon ? atoi(colon + 1) : 0;
    if (colon) *colon = '\0';
    const char *family = strstr(location, "labeler") ? "labeler"
                         : strstr(location, "backfill") ? "backfill"
                                                        : "firehose";
    static const char *types[] = {"FirehoseIngester", "BackfillIngester", "LabelerIngester"};
    const char *type = family[0] == 'f' ? types[0] : family[0] == 'b' ? types[1] : types[2];
    used += (size_t)snprintf(buf + used, size - used, "Backtrace:\nBacktrace [");
    struct {
        const char *fn, *file;
        int line;
    } head[] = {
        {"std::backtrace_rs::backtrace::libunwind::trace",
         RUSTC "/std/src/../../backtrace/src/backtrace/libunwind.rs", 117},
        {"std::backtrace::Backtrace::create", RUSTC "/std/src/backtrace.rs", 331},
        {"std::backtrace::Backtrace::force_capture", RUSTC "/std/src/backtrace.rs", 312},
        {"ingester::main::{{closure}}", "./rsky-ingester/src/bin/ingester.rs", 61},
        {"std::panicking::rust_panic_with_hook", RUSTC "/std/src/panicking.rs", 841},
        {"std::panicking::begin_panic_handler::{{closure}}", RUSTC "/std/src/panicking.rs", 706},
        {"std::sys::backtrace::__rust_end_short_backtrace", RUSTC "/std/src/sys/backtrace.rs",
         168},
        {"__rustc::rust_begin_unwind", RUSTC "/std/src/panicking.rs", 697},
        {"core::panicking::panic_fmt", RUSTC "/core/src/panicking.rs", 75},
        {"core::panicking::panic", RUSTC "/core/src/panicking.rs", 145},
        {"core::option::unwrap_failed", RUSTC "/core/src/option.rs", 2015},
    };
    int nhead = (int)(sizeof head / sizeof head[0]);
    long written = 0;
    if (strstr(location, "bin/ingester.rs")) {
        /* a panic on the main thread: main's own frames under block_on */
        head[9].fn = "core::result::unwrap_failed";
        head[9].file = RUSTC "/core/src/result.rs";
        head[9].line = 1765;
        head[10].fn = "core::result::Result<T,E>::expect";
        head[10].file = RUSTC "/core/src/result.rs";
        head[10].line = 1119;
        for (int i = 0; i < nhead; i++, written++) {
            if (written) used += (size_t)snprintf(buf + used, size - used, ", ");
            used += bt_frame(buf + used, size - used, head[i].fn, head[i].file, head[i].line);
        }
        used += (size_t)snprintf(buf + used, size - used,
                                 ", { fn: \"ingester::main::{{closure}}\", file: \"%s\", line: %d }"
                                 ", { fn: \"tokio::runtime::park::CachedParkThread::block_on\", "
                                 "file: \"" REGISTRY "/tokio-1.47.1/src/runtime/park.rs\", line: 285 }"
                                 ", { fn: \"ingester::main\", file: \"./rsky-ingester/src/bin/"
                                 "ingester.rs\", line: 12 }, { fn: \"std::rt::lang_start_internal\", "
                                 "file: \"" RUSTC "/std/src/rt.rs\", line: 175 }, { fn: \"main\" }, "
                                 "{ fn: \"__libc_start_main\" }, { fn: \"_start\" }]\n",
                                 src, line);
        write_all(2, buf, used < size ? used : size - 1);
        free(buf);
        return;
    }
    for (int i = 0; i < nhead && written < frames - 2; i++, written++) {
        if (written) used += (size_t)snprintf(buf + used, size - used, ", ");
        used += bt_frame(buf + used, size - used, head[i].fn, head[i].file, head[i].line);
    }
    if (written < frames - 2) {
        snprintf(fn, sizeof fn, "rsky_ingester::%s::%s::run_connection::{{closure}}", family,
                 type);
        used += (size_t)snprintf(buf + used, size - used, ", ");
        used += bt_frame(buf + used, size - used, fn, src, line);
        written++;
    }
    /* The future's nesting under tokio: poll frames repeat as deep as the task is. */
    static const char *tokio_fns[] = {
        "<core::pin::Pin<P> as core::future::future::Future>::poll",
        "tokio::runtime::task::core::Core<T,S>::poll::{{closure}}",
        "tokio::loom::std::unsafe_cell::UnsafeCell<T>::with_mut",
        "tokio::runtime::task::core::Core<T,S>::poll",
        "tokio::runtime::task::harness::poll_future::{{closure}}",
        "<core::panic::unwind_safe::AssertUnwindSafe<F> as core::ops::function::FnOnce<()>>"
        "::call_once",
        "std::panicking::catch_unwind::do_call",
        "tokio::runtime::task::harness::Harness<T,S>::poll_inner",
        "tokio::runtime::scheduler::multi_thread::worker::Context::run_task::{{closure}}",
        "tokio::runtime::coop::with_budget",
    };
    static const char *tokio_files[] = {
        RUSTC "/core/src/future/future.rs",
        REGISTRY "/tokio-1.47.1/src/runtime/task/core.rs",
        REGISTRY "/tokio-1.47.1/src/loom/std/unsafe_cell.rs",
        REGISTRY "/tokio-1.47.1/src/runtime/task/core.rs",
        REGISTRY "/tokio-1.47.1/src/runtime/task/harness.rs",
        RUSTC "/core/src/panic/unwind_safe.rs",
        RUSTC "/std/src/panicking.rs",
        REGISTRY "/tokio-1.47.1/src/runtime/task/harness.rs",
        REGISTRY "/tokio-1.47.1/src/runtime/scheduler/multi_thread/worker.rs",
        REGISTRY "/tokio-1.47.1/src/runtime/coop.rs",
    };
    static const int tokio_lines[] = {124, 365, 16, 354, 535, 272, 589, 209, 596, 167};
    for (int k = 0; written < frames - 2; k++, written++) {
        int j = k % 10;
        if (k == 1) {
            snprintf(fn, sizeof fn, "rsky_ingester::%s::%s::run::{{closure}}", family, type);
            used += (size_t)snprintf(buf + used, size - used, ", ");
            used += bt_frame(buf + used, size - used, fn, src, 37);
            continue;
        }
        if (k == 2) {
            snprintf(fn, sizeof fn, "ingester::run_%s::{{closure}}::{{closure}}", family);
            used += (size_t)snprintf(buf + used, size - used, ", ");
            used += bt_frame(buf + used, size - used, fn, "./rsky-ingester/src/bin/ingester.rs",
                             221);
            continue;
        }
        used += (size_t)snprintf(buf + used, size - used, ", ");
        used += bt_frame(buf + used, size - used, tokio_fns[j], tokio_files[j], tokio_lines[j]);
    }
    used += (size_t)snprintf(buf + used, size - used, ", ");
    used += bt_frame(buf + used, size - used, "std::sys::pal::unix::thread::Thread::new::thread_start",
                     RUSTC "/std/src/sys/pal/unix/thread.rs", 97);
    used += (size_t)snprintf(buf + used, size - used,
                             ", { fn: \"start_thread\", file: \"./nptl/pthread_create.c\", line: "
                             "447 }, { fn: \"clone3\" }]\n");
    write_all(2, buf, used < size ? used : size - 1);
    free(buf);
}

/* Print a panic the way the running build would: the hook's banner (hook and debug builds),
 * or Rust's default hook text (oldest build). */
static void print_panic(const char *thread, const char *location, const char *message) {
    if (g_build >= B_HOOK) {
        eprintln("\n" EQ80);
        eprintln("FATAL PANIC OCCURRED");
        eprintln(EQ80);
        eprintln("Location: %s", location);
        eprintln("Message: %s", message);
        eprintln("\nThis is a critical error that should never occur in production.");
        eprintln("Please report this issue with the complete log output.");
        eprintln(EQ80 "\n");
        hook_backtrace(location);
        eprintln(EQ80 "\n");
        return;
    }
    eprintln("\nthread '%s' panicked at %s:\n%s", thread, location, message);
    if (g_backtrace) {
        eprintln("stack backtrace:\n"
                 "   0: rust_begin_unwind\n"
                 "             at " RUSTC "/std/src/panicking.rs:665:5\n"
                 "   1: core::panicking::panic_fmt\n"
                 "             at " RUSTC "/core/src/panicking.rs:74:14\n"
                 "   2: core::panicking::panic\n"
                 "             at " RUSTC "/core/src/panicking.rs:148:5\n"
                 "   3: core::option::unwrap_failed\n"
                 "             at " RUSTC "/core/src/option.rs:2015:5\n"
                 "note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose "
                 "backtrace.");
    } else if (g_first_panic) {
        /* Rust prints this hint only with the first panic of the process. */
        eprintln("note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace");
    }
    g_first_panic = 0;
}

/* main returned Err: Rust prints `Error: <Debug>` on stderr and the process exits 1. */
static void main_returns_err_debug(const char *debug) {
    eprintln("Error: %s", debug);
    exit(1);
}

/* main returned Err(anyhow!(message)) created in main at ingester.rs:`line`. */
static void main_returns_err_at(const char *message, int line) {
    char dbg[LINE_MAX_LEN];
    anyhow_debug(dbg, sizeof dbg, message, NULL, "ingester::main::{{closure}}", line, 1);
    main_returns_err_debug(dbg);
}

static void main_returns_err(const char *message) { main_returns_err_at(message, 152); }

/* A panic on the main thread ends the process with 101. */
static void main_thread_panic(const char *location, const char *message) {
    print_panic("main", location, message);
    exit(101);
}

/* ------------------------------------------------------------------- normal activity --- */

static long g_tick;
static long g_cursor = 4271853120L;

static int alive_host(struct family *f, long k) {
    for (int i = 0; i < f->nhosts; i++) {
        int h = (int)((k + i) % f->nhosts);
        if (!f->dead[h]) return h;
    }
    return -1;
}

/* One round of ordinary processing lines for the running families. The first WARN and
 * ERROR come in rounds 1 and 2, so a run of a couple of seconds shows both shapes. */
static void activity(void) {
    g_tick++;
    struct family *f = &g_fams[F_FIREHOSE];
    int h = f->running ? alive_host(f, g_tick) : -1;
    if (h >= 0) {
        tlog(L_INFO, f->target, "Write task received batch of 500 events");
        g_cursor += 500 + (long)(random_u32() % 200);
        if (g_tick % 7 == 1)
            tlog(L_WARN, f->target,
                 "FirehoseIngester connection for %s closed gracefully. Reconnecting in 5 "
                 "seconds...",
                 f->hosts[h]);
        if (g_tick % 11 == 2) {
            if (g_build == B_OLDEST)
                tlog(L_ERROR, f->target,
                     "FirehoseIngester error for %s: WebSocket(ConnectionClosed)", f->hosts[h]);
            else
                tlog(L_ERROR, f->target,
                     "FirehoseIngester connection error for %s: WebSocket(ConnectionClosed)\n"
                     "Retrying in 5 seconds...",
                     f->hosts[h]);
        }
    }
    f = &g_fams[F_BACKFILL];
    if (f->running && alive_host(f, g_tick) >= 0)
        tlog(L_INFO, f->target, "Processed %ld repos, cursor: did:plc:%08x%08x", g_tick * 10000L,
             random_u32(), random_u32());
    f = &g_fams[F_LABELER];
    h = f->running ? alive_host(f, g_tick) : -1;
    if (h >= 0)
        tlog(L_INFO, f->target, "Received %u labels from %s, cursor: %ld", 1 + random_u32() % 40,
             f->hosts[h], 91234567L + g_tick * 37);
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
static void run_until(long deadline_ms, int leak) {
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
        activity();
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
        tlog(L_WARN, "rsky_ingester::firehose",
             "Backpressure active: stream_len=%ld, high_water=100000, events_in_memory=%ld",
             stream_len, in_memory);
        tlog(L_INFO, "rsky_ingester::firehose", "Memory metrics: %ld events in-flight",
             in_memory);
        sleep_ms(step_ms);
    }
}

static void numbered(long total) {
    g_numbering = 1;
    char id[9];
    snprintf(id, sizeof id, "%08x", random_u32());
    for (long k = 1; k <= total; k++) {
        if (k % 2)
            outln("[SEQ] run=%s n=%ld", id, k);
        else
            eprintln("[SEQ] run=%s n=%ld", id, k);
    }
    outln("[SEQ] run=%s done total=%ld", id, total);
    g_numbering = 0;
}

/* ----------------------------------------------------------------- the run_* functions --- */

/* Hostname without its scheme, as the wss:// and https:// URLs use it. */
static const char *bare(const char *host) {
    const char *p = strstr(host, "://");
    return p ? p + 3 : host;
}

/* redis::Client::open(url): NULL when the URL is accepted, else redis-rs's error Display. */
static const char *redis_open_error(const char *url) {
    const char *p = url;
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
        return "Redis URL did not parse- InvalidClientConfig";
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           *p == '+' || *p == '-' || *p == '.')
        p++;
    if (*p != ':') return "Redis URL did not parse- InvalidClientConfig";
    size_t n = (size_t)(p - url);
    int tcp = (n == 5 && !strncasecmp(url, "redis", 5)) || (n == 6 && !strncasecmp(url, "rediss", 6));
    int unix_ = (n == 10 && !strncasecmp(url, "redis+unix", 10)) || (n == 4 && !strncasecmp(url, "unix", 4));
    if (!tcp && !unix_) return "Redis URL did not parse- InvalidClientConfig";
    if (tcp) {
        const char *rest = p + 1;
        if (strncmp(rest, "//", 2) != 0) return "Missing hostname- InvalidClientConfig";
        rest += 2;
        const char *at = strchr(rest, '@');
        const char *slash = strchr(rest, '/');
        if (at && (!slash || at < slash)) rest = at + 1;
        if (*rest == '\0' || *rest == ':' || *rest == '/')
            return "Missing hostname- InvalidClientConfig";
    }
    return NULL;
}

/* What ended a family's run_* function. */
enum fam_result { FR_NONE, FR_CONFIG, FR_ALL_EXITED, FR_OK };
static enum fam_result g_result[3];
static char g_redis_err[128];

/* The Debug of the anyhow error run_<family> returned (its backtrace starts there). */
static void family_error_debug(char *buf, size_t size, struct family *f, int on_main) {
    char msg[256], func[96];
    snprintf(func, sizeof func, "ingester::run_%s::{{closure}}", f->name);
    if (g_result[f - g_fams] == FR_CONFIG) {
        snprintf(msg, sizeof msg, "Redis error: %s", g_redis_err);
        anyhow_debug(buf, size, msg, g_redis_err, func, f->new_line, on_main);
    } else {
        snprintf(msg, sizeof msg, "CRITICAL: All %s tasks exited. This should never happen.",
                 f->name);
        anyhow_debug(buf, size, msg, NULL, func, f->err_line, on_main);
    }
}

/* run_<family>'s start: the banner line and, per host, X::new(config)? and the spawned host
 * task's first lines. Returns 0 when the family ended at once (g_result says how). */
static int family_start(struct family *f, const char *redis_err, int connect) {
    if (f == &g_fams[F_LABELER] && f->nhosts == 0) {
        if (g_build == B_OLDEST) {
            tlog(L_INFO, "ingester", "No labeler hosts configured, skipping labeler ingester");
            g_result[F_LABELER] = FR_OK;
            return 0;
        }
        tlog(L_INFO, "ingester", "No labeler hosts configured, sleeping forever to keep task alive");
        return 1; /* sleeps forever: never ends, never logs */
    }
    tlog(L_INFO, "ingester", "Starting %s ingesters for %d hosts", f->name, f->nhosts);
    if (f->nhosts == 0) {
        g_result[f - g_fams] = g_build == B_OLDEST ? FR_OK : FR_ALL_EXITED;
        return 0;
    }
    if (redis_err) {
        g_result[f - g_fams] = FR_CONFIG;
        return 0;
    }
    if (f == &g_fams[F_BACKFILL] && g_build == B_DEBUG &&
        env_long("INGESTER_HIGH_WATER_MARK", 100000) < 1000)
        tlog(L_WARN, f->target,
             "High water mark %ld is too low for production (recommended: 100,000+)",
             env_long("INGESTER_HIGH_WATER_MARK", 100000));
    f->running = 1;
    for (int i = 0; i < f->nhosts; i++) {
        tlog(L_INFO, f->target, "Starting %s for %s", f->type, f->hosts[i]);
        if (!connect) continue;
        if (f == &g_fams[F_BACKFILL])
            tlog(L_INFO, f->target, "Starting backfill from cursor None");
        else
            tlog(L_INFO, f->target, "Connecting to wss://%s/xrpc/%s?cursor=%ld with cursor %ld",
                 bare(f->hosts[i]),
                 f == &g_fams[F_LABELER] ? "com.atproto.label.subscribeLabels"
                                         : "com.atproto.sync.subscribeRepos",
                 g_cursor, g_cursor);
    }
    return 1;
}

/* A host task's connection attempt failed: the real run() loop logs and retries. */
static void host_retry(struct family *f, int i, const char *err) {
    if (g_build == B_OLDEST) {
        tlog(L_ERROR, f->target, "%s error for %s: %s", f->type, f->hosts[i], err);
        return;
    }
    if (f == &g_fams[F_BACKFILL])
        tlog(L_ERROR, f->target, "BackfillIngester error for %s: %s\nRetrying in 30 seconds...",
             f->hosts[i], err);
    else
        tlog(L_ERROR, f->target, "%s connection error for %s: %s\nRetrying in 5 seconds...",
             f->type, f->hosts[i], err);
}

/* run_<family>'s `for (i, task) in tasks { task.await }`: log every finished task from the
 * awaited index on; return 1 when every task has ended (run_<family> returns). */
static int family_await(struct family *f) {
    while (f->awaited < f->nhosts && f->dead[f->awaited]) {
        int i = f->awaited++;
        if (g_build >= B_HOOK && g_cancelled)
            tlog(L_ERROR, "ingester",
                 "CRITICAL: %s task %d panicked or was cancelled: JoinError::Cancelled(Id(%d))\n"
                 "This indicates a serious error.",
                 f->title, i, f->task_base + i * 3);
        else if (g_build >= B_HOOK)
            tlog(L_ERROR, "ingester",
                 "CRITICAL: %s task %d panicked or was cancelled: JoinError::Panic(Id(%d), "
                 "\"%s\", ...)\nThis indicates a serious error.",
                 f->title, i, f->task_base + i * 3,
                 env_str("STANDIN_PANIC_MESSAGE", PANIC_UNWRAP));
    }
    if (f->awaited < f->nhosts) return 0;
    g_result[f - g_fams] = g_build == B_OLDEST ? FR_OK : FR_ALL_EXITED;
    f->running = 0;
    return 1;
}

/* main after family `ending` finished: the select arm (all mode) or the `?` (single mode). */
static void family_ended(struct family *f, int single, int has_labeler) {
    int k = (int)(f - g_fams);
    if (single) {
        if (g_result[k] == FR_OK) {
            if (g_build == B_OLDEST) exit(0); /* run_x(config).await?; then Ok(()) */
            return;
        }
        char dbg[LINE_MAX_LEN];
        family_error_debug(dbg, sizeof dbg, f, 1);
        main_returns_err_debug(dbg); /* `?` returns before the A/B/C breadcrumb */
    }
    /* The JoinHandle result: Ok(Ok(())) (oldest build) or Ok(Err(<anyhow Debug>)). */
    char result[LINE_MAX_LEN], path[160];
    if (g_result[k] == FR_OK) {
        snprintf(result, sizeof result, "Ok(Ok(()))");
    } else {
        char dbg[LINE_MAX_LEN / 2];
        family_error_debug(dbg, sizeof dbg, f, 0);
        snprintf(result, sizeof result, "Ok(Err(%s))", dbg);
    }
    static const char letters3[] = {'D', 'E', 'F'};
    static const char letters2[] = {'G', 'H'};
    if (has_labeler)
        snprintf(path, sizeof path, "tokio::select! triggered on %s_handle - EXIT PATH %c",
                 f->name, letters3[k]);
    else
        snprintf(path, sizeof path,
                 "tokio::select! triggered on %s_handle (no labeler) - EXIT PATH %c", f->name,
                 letters2[k]);
    trace("%s", path);
    trace("%s result: %s", f->title, result);
    if (g_build == B_DEBUG) tlog(L_ERROR, "ingester", "[EXIT-TRACE] %s", path);
    tlog(L_ERROR, "ingester", "%s ingester exited: %s", f->title, result);
    if (g_build == B_OLDEST) exit(0); /* the select arm falls through to Ok(()) */
    char msg[256];
    snprintf(msg, sizeof msg,
             "CRITICAL: %s ingester exited unexpectedly. This should never happen. Check logs for "
             "details.",
             f->title);
    main_returns_err_at(msg, has_labeler ? f->select_line : f->select_line + 28);
}

/* ------------------------------------------------------- the seed's hypothetical paths --- */

enum family_end { END_ERR, END_OK };

/* The body of run_<family> ending for a hypothetical scenario: logs what its host tasks and
 * its wait loop would log, and says whether run_<family> returns Err or Ok(()). */
static enum family_end hypothetical_family_ends(struct family *f, const char *scenario) {
    const char *err = env_str("STANDIN_ERROR", "WebSocket(ConnectionClosed)");
    for (int i = 0; i < f->nhosts; i++) {
        if (!strcmp(scenario, "hypothetical-host-panic")) {
            char loc[128];
            snprintf(loc, sizeof loc, "rsky-ingester/src/%s.rs:123:45", f->name);
            print_panic("tokio-runtime-worker", loc, PANIC_UNWRAP);
            tlog(L_ERROR, "ingester",
                 "CRITICAL: %s task %d panicked or was cancelled: JoinError::Panic(Id(%d), \"%s\", "
                 "..)\nThis indicates a serious error.",
                 f->title, i, 9 + i, PANIC_UNWRAP);
            continue;
        }
        if (!strcmp(scenario, "hypothetical-task-ok") ||
            !strcmp(scenario, "hypothetical-single-mode")) {
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
    return (!strcmp(scenario, "hypothetical-task-ok") ||
            !strcmp(scenario, "hypothetical-single-mode"))
               ? END_OK
               : END_ERR;
}

/* The seed's endings, kept as explicitly hypothetical modes. Never returns. */
static void hypothetical_end(const char *scenario, int single, int ending, int has_labeler) {
    if (!strcmp(scenario, "hypothetical-silent-exit")) exit(1);
    if (!strcmp(scenario, "hypothetical-main-panic"))
        main_thread_panic("rsky-ingester/src/bin/ingester.rs:152:38",
                          "called `Result::unwrap()` on an `Err` value: Os { code: 24, kind: "
                          "Uncategorized, message: \"Too many open files\" }");
    if (!strcmp(scenario, "hypothetical-impossible")) {
        trace("IMPOSSIBLE: Reached end of main() after match - EXIT PATH Z");
        if (g_build == B_DEBUG)
            tlog(L_ERROR, "ingester",
                 "[EXIT-TRACE] IMPOSSIBLE: Reached end of main() after match - EXIT PATH Z");
        main_returns_err("IMPOSSIBLE: reached end of main() after match");
    }

    struct family *f = &g_fams[ending];
    char loc[128], result[1024];
    snprintf(loc, sizeof loc, "rsky-ingester/src/%s.rs:123:45", f->name);

    if (single >= 0) {
        /* run_<family>(config).await? runs on the main thread in a single mode. */
        if (!strcmp(scenario, "hypothetical-task-panic")) main_thread_panic(loc, PANIC_UNWRAP);
        if (hypothetical_family_ends(f, scenario) == END_ERR) {
            char msg[256];
            snprintf(msg, sizeof msg, "CRITICAL: All %s tasks exited. This should never happen.",
                     f->name);
            main_returns_err(msg); /* `?` returns before the A/B/C breadcrumb */
        }
        static const char letters[] = {'A', 'B', 'C'};
        static const int lines[] = {113, 122, 131};
        trace("%s mode exited - EXIT PATH %c", f->title, letters[single]);
        if (g_build == B_DEBUG)
            tlog(L_ERROR, "ingester", "[EXIT-TRACE] %s mode exited - EXIT PATH %c", f->title,
                 letters[single]);
        char msg[256];
        snprintf(msg, sizeof msg, "CRITICAL: %s mode exited unexpectedly", f->title);
        main_returns_err_at(msg, lines[single]);
    }

    if (!strcmp(scenario, "hypothetical-task-panic")) {
        print_panic("tokio-runtime-worker", loc, PANIC_UNWRAP);
        snprintf(result, sizeof result, "Err(JoinError::Panic(Id(6), \"%s\", ..))", PANIC_UNWRAP);
    } else if (hypothetical_family_ends(f, scenario) == END_OK) {
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
    if (g_build == B_DEBUG) tlog(L_ERROR, "ingester", "[EXIT-TRACE] %s", path);
    tlog(L_ERROR, "ingester", "%s ingester exited: %s", f->title, result);
    char msg[256];
    snprintf(msg, sizeof msg,
             "CRITICAL: %s ingester exited unexpectedly. This should never happen. Check logs for "
             "details.",
             f->title);
    main_returns_err(msg);
}

/* ------------------------------------------------------------------------------ main --- */

static void on_sigterm(int sig) {
    (void)sig;
    _exit(0);
}

static enum build parse_build(const char *v, enum build dflt) {
    if (!v || !*v) return dflt;
    if (!strcmp(v, "oldest")) return B_OLDEST;
    if (!strcmp(v, "hook")) return B_HOOK;
    if (!strcmp(v, "debug")) return B_DEBUG;
    eprintln("standin: unknown STANDIN_BUILD %s (oldest, hook or debug)", v);
    exit(2);
}

static const char *canonical_scenario(const char *s) {
    static const char *aliases[][2] = {
        {"task-error", "hypothetical-task-error"}, {"task-panic", "hypothetical-task-panic"},
        {"host-panic", "hypothetical-host-panic"}, {"main-panic", "hypothetical-main-panic"},
        {"task-ok", "hypothetical-task-ok"},       {"impossible", "hypothetical-impossible"},
        {"silent-exit", "hypothetical-silent-exit"}, {NULL, NULL},
    };
    for (int i = 0; aliases[i][0]; i++)
        if (!strcmp(s, aliases[i][0])) return aliases[i][1];
    return s;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--healthcheck")) return 0;
        if (!strcmp(argv[i], "--version")) {
            outln("ingester 0.1.0 (rsky-ingester stand-in)");
            return 0;
        }
    }
    const char *scenario = canonical_scenario(env_str("STANDIN_SCENARIO", "healthy"));
    /* The loader error belongs to the image built elsewhere; one built from the source tree
     * on this host (STANDIN_SOURCE_BUILD) links against its own libc and starts. */
    if (!strcmp(scenario, "binary-cannot-start") && getenv("STANDIN_SOURCE_BUILD")) scenario = "healthy";
    if (!strcmp(scenario, "binary-cannot-start")) {
        /* ld.so refuses the binary before main: its message, exit 1, nothing else. */
        eprintln("/usr/local/bin/ingester: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.39' "
                 "not found (required by /usr/local/bin/ingester)");
        return 1;
    }
    g_color = getenv("NO_COLOR") == NULL;
    const char *legacy = getenv("STANDIN_INSTRUMENTED");
    enum build dflt = legacy && *legacy ? (strcmp(legacy, "0") ? B_DEBUG : B_HOOK) : B_HOOK;
    g_build = parse_build(getenv("STANDIN_BUILD"), dflt);
    g_build = parse_build(getenv("STANDIN_SOURCE_BUILD"), g_build);
    const char *bt = env_str("RUST_BACKTRACE", "");
    g_backtrace = *bt && strcmp(bt, "0") != 0;
    long exit_after = env_long("STANDIN_EXIT_AFTER_MS", 3000);
    setup_filter();

    if (!strcmp(scenario, "idle")) {
        signal(SIGTERM, on_sigterm);
        tlog(L_INFO, "standin", "idle sidecar ready; sleeping until stopped");
        for (;;) pause();
    }
    static const char *known[] = {
        "healthy", "retry-errors", "all-panicked", "contained-panic", "config-redis-url",
        "config-no-relays", "config-unknown-mode", "config-metrics-port", "oom", "leak",
        "hypothetical-task-error", "hypothetical-task-panic", "hypothetical-host-panic",
        "hypothetical-main-panic", "hypothetical-task-ok", "hypothetical-single-mode",
        "hypothetical-impossible", "hypothetical-silent-exit", "hypothetical-cancelled", NULL};
    int ok = 0;
    for (int i = 0; known[i]; i++) ok |= !strcmp(known[i], scenario);
    if (!ok) {
        eprintln("standin: unknown STANDIN_SCENARIO %s", scenario);
        return 2;
    }
    g_cancelled = !strcmp(scenario, "hypothetical-cancelled");
    int hypothetical = !strncmp(scenario, "hypothetical-", 13) && !g_cancelled;

    long start = now_ms();
    tlog(L_INFO, "ingester", "Starting rsky-ingester");
    long port_n = 4100;
    if (g_build == B_DEBUG) {
        tlog(L_INFO, "ingester", "Metrics initialized");
        const char *port = env_str("METRICS_PORT", "4100");
        char *end;
        errno = 0;
        long v = strtol(port, &end, 10);
        const char *kind = NULL;
        if (!*port) kind = "Empty";
        else if (*end || *port == '-' || *port == ' ') kind = "InvalidDigit";
        else if (v > 65535 || errno == ERANGE) kind = "PosOverflow";
        if (kind) {
            char msg[160];
            snprintf(msg, sizeof msg,
                     "METRICS_PORT must be a valid port number: ParseIntError { kind: %s }", kind);
            main_thread_panic("rsky-ingester/src/bin/ingester.rs:79:10", msg);
        }
        port_n = v;
    }

    const char *redis_url = env_str("REDIS_URL", "redis://localhost:6379");
    g_fams[F_FIREHOSE].nhosts =
        split_hosts(env_str("INGESTER_RELAY_HOSTS", "bsky.network"), g_fams[F_FIREHOSE].hosts);
    g_fams[F_BACKFILL].nhosts = g_fams[F_FIREHOSE].nhosts;
    memcpy(g_fams[F_BACKFILL].hosts, g_fams[F_FIREHOSE].hosts, sizeof g_fams[0].hosts);
    g_fams[F_LABELER].nhosts =
        split_hosts(env_str("INGESTER_LABELER_HOSTS", ""), g_fams[F_LABELER].hosts);
    char relays[4096], labelers[4096], url_dbg[1024];
    debug_vec(relays, sizeof relays, g_fams[F_FIREHOSE].hosts, g_fams[F_FIREHOSE].nhosts);
    debug_vec(labelers, sizeof labelers, g_fams[F_LABELER].hosts, g_fams[F_LABELER].nhosts);
    debug_str(url_dbg, sizeof url_dbg, redis_url);
    if (g_build == B_DEBUG)
        tlog(L_INFO, "ingester", "Metrics server starting on port %ld", port_n);
    tlog(L_INFO, "ingester",
         "Configuration: IngesterConfig { redis_url: %s, relay_hosts: %s, labeler_hosts: %s, "
         "high_water_mark: %ld, batch_size: %ld, batch_timeout_ms: %ld }",
         url_dbg, relays, labelers, env_long("INGESTER_HIGH_WATER_MARK", 100000),
         env_long("INGESTER_BATCH_SIZE", 500), env_long("INGESTER_BATCH_TIMEOUT_MS", 1000));

    const char *mode = env_str("INGESTER_MODE", "all");
    if (!strcmp(scenario, "hypothetical-single-mode") && !strcmp(mode, "all")) mode = "firehose";
    int single = -1;
    if (!strcmp(mode, "firehose")) single = F_FIREHOSE;
    else if (!strcmp(mode, "backfill")) single = F_BACKFILL;
    else if (!strcmp(mode, "labeler")) single = F_LABELER;
    else if (strcmp(mode, "all") != 0) {
        /* The real code: eprintln! (debug build), error!, std::process::exit(1): no `Error:`. */
        trace("Unknown INGESTER_MODE: %s - EXIT PATH I", mode);
        tlog(L_ERROR, "ingester", "Unknown INGESTER_MODE: %s", mode);
        exit(1);
    }
    int has_labeler = g_fams[F_LABELER].nhosts > 0;

    if (hypothetical) {
        /* --------------------------------------------- the seed's paths, unchanged --- */
        int ending;
        if (single >= 0) {
            trace("About to run %s mode", mode);
            ending = single;
            if (single == F_LABELER && !has_labeler) {
                tlog(L_INFO, "ingester",
                     "No labeler hosts configured, sleeping forever to keep task alive");
                ending = -1;
            } else {
                g_fams[single].running = 1;
                family_start(&g_fams[single], NULL, 1);
            }
        } else {
            trace("Running in 'all' mode");
            trace("Spawning firehose and backfill tasks");
            family_start(&g_fams[F_FIREHOSE], NULL, 1);
            family_start(&g_fams[F_BACKFILL], NULL, 1);
            if (has_labeler) {
                trace("Spawning labeler task (hosts configured)");
                family_start(&g_fams[F_LABELER], NULL, 1);
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
        int main_ends = !strcmp(scenario, "hypothetical-main-panic") ||
                        !strcmp(scenario, "hypothetical-impossible") ||
                        !strcmp(scenario, "hypothetical-silent-exit");
        if (ending < 0 && !main_ends) run_until(-1, 0); /* nothing can end: sleeps forever */
        run_until(start + exit_after, 0);
        hypothetical_end(scenario, single, ending, has_labeler);
        return 1; /* not reached */
    }

    /* ------------------------------------------------------------ the real code paths --- */
    const char *redis_err = redis_open_error(redis_url);
    if (redis_err) snprintf(g_redis_err, sizeof g_redis_err, "%s", redis_err);
    int retry = !strcmp(scenario, "retry-errors");
    int ended[3] = {0, 0, 0}, nended = 0;
    if (single >= 0) {
        trace("About to run %s mode", mode);
        if (!family_start(&g_fams[single], redis_err, !retry)) family_ended(&g_fams[single], 1, 0);
    } else {
        trace("Running in 'all' mode");
        trace("Spawning firehose and backfill tasks");
        for (int k = 0; k < 3; k++) {
            if (k == F_LABELER) {
                if (!has_labeler) break;
                trace("Spawning labeler task (hosts configured)");
            }
            if (!family_start(&g_fams[k], redis_err, !retry)) ended[nended++] = k;
        }
        if (has_labeler) {
            trace("Entering tokio::select! with all three tasks");
        } else {
            trace("No labeler hosts configured");
            tlog(L_INFO, "ingester", "No labeler hosts configured, skipping labeler ingester");
            trace("Entering tokio::select! with firehose and backfill only");
        }
        /* select! polls its branches in random order: any ready one may win. */
        if (nended) family_ended(&g_fams[ended[random_u32() % (uint32_t)nended]], 0, has_labeler);
    }

    long numbered_total = env_long("STANDIN_NUMBERED", 0);
    if (numbered_total > 0) numbered(numbered_total);
    if (!strcmp(scenario, "oom")) oom_forever();

    /* Plan the host tasks' panics. */
    const char *fam_name = getenv("STANDIN_FAMILY");
    if (!fam_name || !*fam_name) fam_name = getenv("STANDIN_TASK");
    if (!fam_name || !*fam_name) fam_name = single >= 0 ? g_fams[single].name : "firehose";
    int pf = !strcmp(fam_name, "backfill") ? F_BACKFILL : !strcmp(fam_name, "labeler") ? F_LABELER : F_FIREHOSE;
    if (strcmp(fam_name, g_fams[pf].name)) {
        eprintln("standin: unknown STANDIN_FAMILY %s", fam_name);
        return 2;
    }
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < MAX_HOSTS; i++) g_fams[k].panic_at[i] = -1;
    int panics = !strcmp(scenario, "all-panicked") || !strcmp(scenario, "contained-panic") ||
                 g_cancelled;
    if (panics) {
        struct family *f = &g_fams[pf];
        if (!f->running) {
            eprintln("standin: STANDIN_FAMILY=%s has no running host tasks", fam_name);
            return 2;
        }
        if (strcmp(scenario, "contained-panic") != 0) {
            /* every host, in a random order, a few hundred ms apart */
            int order[MAX_HOSTS];
            for (int i = 0; i < f->nhosts; i++) order[i] = i;
            for (int i = f->nhosts - 1; i > 0; i--) {
                int j = (int)(random_u32() % (uint32_t)(i + 1)), t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
            long t = exit_after;
            for (int i = 0; i < f->nhosts; i++) {
                f->panic_at[order[i]] = t;
                t += 50 + (long)(random_u32() % 350);
            }
        } else {
            long h = env_long("STANDIN_PANIC_HOST", 1);
            if (h >= f->nhosts) h = f->nhosts - 1;
            f->panic_at[h] = exit_after;
        }
    }
    long retry_ms = env_long("STANDIN_RETRY_MS", 5000);
    const char *retry_err = env_str("STANDIN_ERROR", "Redis(Connection refused (os error 111))");
    if (retry)
        for (int k = 0; k < 3; k++)
            for (int i = 0; i < g_fams[k].nhosts; i++) g_fams[k].next_retry[i] = 0;

    /* The event loop: ordinary activity, retries and panics as they fall due. */
    int leak = !strcmp(scenario, "leak");
    long leak_rate = env_long("STANDIN_LEAK_KB_PER_S", 512) * 1024L;
    long next_activity = now_ms() - start + 500 + (long)(random_u32() % 501);
    long last = now_ms() - start;
    for (;;) {
        long t = now_ms() - start;
        long next = next_activity;
        for (int k = 0; k < 3; k++) {
            struct family *f = &g_fams[k];
            if (!f->running) continue;
            for (int i = 0; i < f->nhosts; i++) {
                if (f->dead[i]) continue;
                if (f->panic_at[i] >= 0 && f->panic_at[i] < next) next = f->panic_at[i];
                if (retry && f->next_retry[i] < next) next = f->next_retry[i];
            }
        }
        if (next > t) sleep_ms(next - t);
        t = now_ms() - start;
        for (int k = 0; k < 3; k++) {
            struct family *f = &g_fams[k];
            if (!f->running) continue;
            for (int i = 0; i < f->nhosts; i++) {
                if (f->dead[i]) continue;
                if (retry && f->next_retry[i] <= t) {
                    host_retry(f, i, retry_err);
                    f->next_retry[i] = t + (k == F_BACKFILL ? retry_ms * 6 : retry_ms);
                }
                if (f->panic_at[i] >= 0 && f->panic_at[i] <= t) {
                    char loc[160];
                    snprintf(loc, sizeof loc, "rsky-ingester/src/%s.rs:123:45", f->name);
                    if (!g_cancelled)
                        print_panic("tokio-runtime-worker", env_str("STANDIN_PANIC_LOCATION", loc),
                                    env_str("STANDIN_PANIC_MESSAGE", PANIC_UNWRAP));
                    f->dead[i] = 1;
                    if (family_await(f)) family_ended(f, single >= 0, has_labeler);
                }
            }
        }
        if (!retry && t >= next_activity) {
            activity();
            if (leak) {
                size_t step = (size_t)(leak_rate * (t - last) / 1000);
                if (step && grow(step)) g_leak_bytes += (long)step;
                if (g_tick % 5 == 0)
                    tlog(L_INFO, "rsky_ingester::firehose", "Memory metrics: %ld events in-flight",
                         g_leak_bytes / 1024);
            }
            last = t;
            next_activity = t + 500 + (long)(random_u32() % 501);
        }
        if (retry && t >= next_activity) next_activity = t + 3600000L;
    }
}
