/* The benchmark's client scenarios in C on one plain socket: the physical limit.
 *
 * No library: it packs SUBMIT_JOB / SUBMIT_JOB_BG itself, pipelines them with
 * poll(), matches JOB_CREATED in order and WORK_COMPLETE by handle, and checks
 * every echoed result against what it sent.  A Python client's ratio to it is
 * what the interpreter and the library cost on top of gearmand and the workers.
 *
 *   cclient HOST:PORT TASK MODE JOBS SIZE [WINDOW]
 *   MODE: sequential | batch | background | windows;  SIZE 0: small distinct payloads
 *
 * Prints one JSON line, the fields bench/cell.py prints for a client cell.
 * Standard C and POSIX sockets only.  Not a usable client: no retries, no failover. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ECHO_REQ = 16, ECHO_RES = 17, SUBMIT_JOB = 7, JOB_CREATED = 8, WORK_COMPLETE = 13, WORK_FAIL = 14,
       SUBMIT_JOB_BG = 18, ERROR = 19, WORK_EXCEPTION = 25 };
enum { HEADER = 12, SMALL = 11, FLUSH_AT = 65536 };

typedef struct { char *handle; size_t len; long job; } Slot;

static int sock;
static const char *task;
static size_t task_len, size;        /* size 0: "job-%07ld" payloads */
static unsigned char *big;           /* the one shared payload when size > 0 */
static unsigned char *obuf, *rbuf;   /* outgoing packets; received bytes */
static size_t ocap, olen, opos, rcap, rlen, rpos;
static const unsigned char *bigseg;  /* a large payload sent straight after obuf */
static size_t bigpos;
static long next_job, end_job, done;
static Slot *table;                  /* handle -> job of the current batch */
static size_t mask;
static uint64_t rng[2];

static void die(const char *what) {
    printf("{\"ok\": false, \"error\": \"cclient: %s\"}\n", what);
    exit(1);
}

/* Job i's small payload, as bench/cell.py makes it: "job-0000042" (i < 10,000,000). */
static void small_payload(long i, char out[SMALL + 1]) {
    snprintf(out, SMALL + 1, "job-%07lu", (unsigned long)i % 10000000);
}

static void *grow(void *p, size_t *cap, size_t need) {
    if (need <= *cap) return p;
    while (*cap < need) *cap = *cap ? *cap * 2 : FLUSH_AT * 2;
    if (!(p = realloc(p, *cap))) die("out of memory");
    return p;
}

static void put32(unsigned char *p, uint32_t v) {
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

static uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t next_random(void) {  /* xorshift128+, seeded from /dev/urandom */
    uint64_t a = rng[0], b = rng[1];
    rng[0] = b; a ^= a << 23; rng[1] = a ^ b ^ (a >> 17) ^ (b >> 26);
    return rng[1] + b;
}

/* Append job i's SUBMIT packet (a random 32-hex unique id, as the libraries send). */
static void append_submit(int command, long i) {
    char small[SMALL + 1];
    const unsigned char *data = big;
    size_t len = size, fields = task_len + 34, at;
    if (!size) { small_payload(i, small); data = (unsigned char *)small; len = SMALL; }
    obuf = grow(obuf, &ocap, olen + HEADER + fields + (len < FLUSH_AT ? len : 0));
    at = olen;
    memcpy(obuf + at, "\0REQ", 4); put32(obuf + at + 4, command);
    put32(obuf + at + 8, (uint32_t)(fields + len));
    memcpy(obuf + at + HEADER, task, task_len);
    obuf[at + HEADER + task_len] = 0;
    snprintf((char *)obuf + at + HEADER + task_len + 1, 33, "%016llx%016llx",
             (unsigned long long)next_random(), (unsigned long long)next_random());
    obuf[at + HEADER + fields - 1] = 0;
    olen = at + HEADER + fields;
    if (len >= FLUSH_AT) { bigseg = data; bigpos = 0; return; }  /* sent by reference */
    memcpy(obuf + olen, data, len);
    olen += len;
}

/* Send what the kernel takes now; refill from the jobs left.  1 while anything is left. */
static int flush(int command) {
    for (;;) {
        if (opos == olen && !bigseg) {
            olen = opos = 0;
            while (next_job < end_job && olen < FLUSH_AT && !bigseg) append_submit(command, next_job++);
            if (!olen) return 0;
        }
        const unsigned char *from = opos < olen ? obuf + opos : bigseg + bigpos;
        size_t left = opos < olen ? olen - opos : size - bigpos;
        ssize_t sent = send(sock, from, left, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) die("send failed");
        if (sent < 0) return 1;  /* the kernel's buffer is full: poll */
        if (opos < olen) opos += sent;
        else if ((bigpos += sent) == size) bigseg = NULL;
    }
}

static int payload_ok(long job, const unsigned char *data, size_t len) {
    char small[SMALL + 1];
    if (size) return len == size && !memcmp(data, big, size);
    small_payload(job, small);
    return len == SMALL && !memcmp(data, small, SMALL);
}

static Slot *slot_of(const unsigned char *handle, size_t len) {
    uint64_t h = 1469598103934665603ULL;  /* FNV-1a */
    for (size_t k = 0; k < len; k++) h = (h ^ handle[k]) * 1099511628211ULL;
    for (size_t at = h & mask;; at = (at + 1) & mask)
        if (!table[at].handle || (table[at].len == len && !memcmp(table[at].handle, handle, len)))
            return &table[at];
}

/* Submit jobs [first, first + count), pipelined; return when all are complete
 * (foreground) or accepted (background).  Counts good results into `done`. */
static void run_batch(int command, long first, long count) {
    int foreground = command == SUBMIT_JOB;
    long created = 0, finished = 0;
    size_t cap = 4;
    while (cap < 2 * (size_t)count) cap *= 2;
    if (!(table = calloc(cap, sizeof(Slot)))) die("out of memory");
    mask = cap - 1;
    next_job = first; end_job = first + count;
    while (foreground ? finished < count : created < count) {
        int sending = flush(command);
        if (sending) {  /* output pending: wait for room or replies */
            struct pollfd p = { sock, POLLIN | POLLOUT, 0 };
            if (poll(&p, 1, -1) < 0 && errno != EINTR) die("poll failed");
            if (!(p.revents & (POLLIN | POLLERR | POLLHUP))) continue;
        }
        rbuf = grow(rbuf, &rcap, rlen + FLUSH_AT);  /* all sent: block in recv */
        ssize_t got = recv(sock, rbuf + rlen, rcap - rlen, sending ? MSG_DONTWAIT : 0);
        if (got == 0) die("gearmand closed the connection");
        if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) die("recv failed");
        if (got < 0) continue;
        rlen += got;
        while (rlen - rpos >= HEADER) {
            unsigned char *head = rbuf + rpos, *body = head + HEADER;
            size_t blen = get32(head + 8);
            if (rlen - rpos < HEADER + blen) {  /* partial packet: make room for all of it */
                memmove(rbuf, head, rlen - rpos); rlen -= rpos; rpos = 0;
                rbuf = grow(rbuf, &rcap, HEADER + blen + FLUSH_AT);
                break;
            }
            rpos += HEADER + blen;
            uint32_t reply = get32(head + 4);
            if (reply == ERROR) die("gearmand sent ERROR");
            if (reply == JOB_CREATED) {
                long job = first + created++;
                if (!foreground) { done += blen > 0; continue; }
                Slot *s = slot_of(body, blen);
                if (!(s->handle = malloc(blen))) die("out of memory");
                memcpy(s->handle, body, blen); s->len = blen; s->job = job;
            } else if (reply == WORK_COMPLETE || reply == WORK_FAIL || reply == WORK_EXCEPTION) {
                unsigned char *nul = memchr(body, 0, blen);
                size_t hlen = nul ? (size_t)(nul - body) : blen;
                Slot *s = slot_of(body, hlen);
                if (!s->handle || s->job < 0) die("a reply for a handle not in flight");
                finished++;
                if (reply == WORK_COMPLETE && nul)
                    done += payload_ok(s->job, nul + 1, blen - hlen - 1);
                s->job = -1;
            }
        }
        if (rpos == rlen) rlen = rpos = 0;
    }
    for (size_t k = 0; k < cap; k++) free(table[k].handle);
    free(table);
}

static long peak_rss_kib(void) {
    char line[256];
    long kib = 0;
    FILE *fh = fopen("/proc/self/status", "r");
    while (fh && fgets(line, sizeof line, fh))
        if (!strncmp(line, "VmHWM:", 6)) kib = atol(line + 6);
    if (fh) fclose(fh);
    return kib;
}

static double cpu_seconds(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void connect_to(char *address) {
    struct addrinfo hints = { 0 }, *found;
    char *colon = strrchr(address, ':');
    int one = 1;
    if (!colon) die("address must be HOST:PORT");
    *colon = 0;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(address, colon + 1, &hints, &found)) die("cannot resolve the address");
    sock = socket(found->ai_family, SOCK_STREAM, 0);
    if (sock < 0 || connect(sock, found->ai_addr, found->ai_addrlen)) die("cannot connect");
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    freeaddrinfo(found);
    /* One ECHO_REQ round trip outside the timing, as the libraries' cells warm up. */
    unsigned char echo[HEADER + 4] = { 0, 'R', 'E', 'Q', 0, 0, 0, ECHO_REQ, 0, 0, 0, 4, 'w', 'a', 'r', 'm' };
    unsigned char reply[HEADER + 4];
    size_t got = 0;
    ssize_t n;
    if (send(sock, echo, sizeof echo, MSG_NOSIGNAL) != (ssize_t)sizeof echo) die("cannot send ECHO_REQ");
    while (got < sizeof reply && (n = recv(sock, reply + got, sizeof reply - got, 0)) > 0) got += n;
    if (got < sizeof reply || get32(reply + 4) != ECHO_RES) die("no ECHO_RES from gearmand");
}

int main(int argc, char **argv) {
    if (argc < 6) die("usage: cclient HOST:PORT TASK MODE JOBS SIZE [WINDOW]");
    const char *mode = argv[3];
    long jobs = atol(argv[4]), window = argc > 6 ? atol(argv[6]) : 10;
    task = argv[2]; task_len = strlen(task); size = (size_t)atol(argv[5]);
    FILE *random = fopen("/dev/urandom", "rb");
    if (!random || fread(rng, sizeof rng, 1, random) != 1) die("cannot read /dev/urandom");
    fclose(random);
    if (size && !(big = malloc(size))) die("out of memory");
    for (size_t k = 0; k < size; k++) big[k] = k < size / 256 * 256 ? k % 256 : 'x';
    if (jobs <= 0 || jobs >= 10000000 || window <= 0) die("JOBS (< 10,000,000) and WINDOW must be positive");
    connect_to(argv[1]);
    long rss_before = peak_rss_kib();
    double cpu = cpu_seconds(), started = now();
    if (!strcmp(mode, "sequential"))
        for (long i = 0; i < jobs; i++) run_batch(SUBMIT_JOB, i, 1);
    else if (!strcmp(mode, "batch")) run_batch(SUBMIT_JOB, 0, jobs);
    else if (!strcmp(mode, "background")) run_batch(SUBMIT_JOB_BG, 0, jobs);
    else if (!strcmp(mode, "windows"))
        for (long i = 0; i < jobs; i += window) run_batch(SUBMIT_JOB, i, i + window > jobs ? jobs - i : window);
    else die("MODE must be sequential, batch, background or windows");
    double elapsed = now() - started;
    cpu = cpu_seconds() - cpu;
    printf("{\"elapsed\": %.6f, \"cpu_s\": %.6f, \"jobs\": %ld, \"done\": %ld, \"ok\": %s, "
           "\"peak_rss_kib\": %ld, \"rss_before_kib\": %ld, \"jobs_per_s\": %.1f, "
           "\"cpu_us_per_job\": %.2f%s}\n", elapsed, cpu, jobs, done, done == jobs ? "true" : "false",
           peak_rss_kib(), rss_before, jobs / elapsed, cpu / jobs * 1e6,
           done == jobs ? "" : ", \"error\": \"cclient: not every result came back right\"");
    return done == jobs ? 0 : 1;
}
