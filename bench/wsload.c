/*
 * wsload: a WebSocket echo load generator for bench/run.py (Linux, one thread, epoll).
 *
 * Build:  cc -O2 -Wall -Wextra -o bench/.build/wsload bench/wsload.c
 *         (bench/run.py builds it by itself when the source is newer than the binary)
 *
 * wsload echo -p PORT [-h HOST] [-u PATH] [-c CONNS] [-d SECONDS] [-s BYTES] [-b]
 *     Opens CONNS WebSockets to ws://HOST:PORT/PATH (default 127.0.0.1, /ws, 64 connections),
 *     then each connection sends a message of BYTES bytes (default 1024; text of ASCII letters,
 *     or random binary with -b), waits for the echo, checks its type and length, and sends the
 *     next one: a closed loop, one message in flight per connection. The measurement starts
 *     when every connection is open and lasts SECONDS (default 10). Prints one JSON line:
 *     messages, seconds, msgs_per_s, mb_per_s (echoed payload, 10^6 bytes), round-trip
 *     p50/p90/p99/max in ms, errors (connections lost) and cpu (this process's CPU time over
 *     the measurement / its length: near 1.0 means the generator, not the server, is the
 *     limit).
 *
 * wsload idle -p PORT [-h HOST] [-u PATH] [-c CONNS] [-t MAX_SECONDS]
 *     Opens CONNS WebSockets (at most 100 handshaking at once); each exchanges one 16-byte
 *     text message, then stays idle (server pings are answered). Prints
 *     {"event": "open", "open": N, "failed": F, "seconds": S} once all are open or failed,
 *     then reads commands on stdin: "check" sends one message on every open WebSocket and
 *     prints {"event": "check", "alive": K, "count": N} when all have answered (or after
 *     30 s); end of input (or MAX_SECONDS, default 900) closes everything and exits.
 *
 * Client frames are masked with a fixed key, and every message is one frame. The handshake
 * offers no extension (no permessage-deflate) and no subprotocol.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { CONNECTING, HANDSHAKE, OPEN, DEAD };
enum { MODE_ECHO, MODE_IDLE };

#define MAX_HEAD 4096
#define IDLE_MESSAGE "idle-websocket-1"  /* 16 bytes */
#define STDIN_TAG UINT64_MAX

struct frame {
    uint8_t *data;
    size_t len;
    size_t payload;
    int opcode;
};

struct conn {
    int fd;
    int state;
    int out_armed;                /* EPOLLOUT is registered */
    const struct frame *msg;      /* data frame being written (NULL: none) */
    size_t msg_off;
    uint8_t ctl[2 + 4 + 125];     /* pending control frame (a pong) */
    size_t ctl_len, ctl_off;
    char head[MAX_HEAD];          /* handshake response */
    size_t head_len;
    uint8_t hdr[14];              /* partial frame header */
    size_t hdr_len;
    int in_frame, opcode, fin, msg_opcode;
    uint64_t remaining;           /* payload bytes left in the current frame */
    uint8_t cpay[125];            /* control frame payload */
    size_t cpay_len;
    uint64_t msg_bytes;           /* payload bytes of the message being received */
    int waiting;                  /* an echo is expected */
    double sent_at;
    int ready;                    /* idle mode: the first echo came back */
    int checked;                  /* idle mode: answered the current check */
};

static struct {
    int mode;
    const char *host;
    int port;
    const char *path;
    int conns;
    double duration;
    size_t size;
    int binary;
    double max_seconds;
} opt = {MODE_ECHO, "127.0.0.1", 0, "/ws", 64, 10.0, 1024, 0, 900.0};

static int ep;
static struct conn *conns;
static struct sockaddr_in addr;
static char request[1024];
static size_t request_len;
static struct frame data_frame, idle_frame;

/* counters */
static int n_started, n_open, n_failed, n_lost, n_handshaking;
static int measuring;
static double window_start, window_end;
static uint64_t messages, payload_bytes, bad_echoes;
static uint64_t *samples;   /* round trips in ns */
static size_t n_samples, cap_samples;
static int check_pending, check_answered;
static double check_deadline;
static char first_error[256];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_time(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static void die(const char *what) {
    fprintf(stderr, "wsload: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void note_error(const char *fmt, const char *detail) {
    if (!first_error[0]) snprintf(first_error, sizeof first_error, fmt, detail);
}

static void build_frame(struct frame *f, int opcode, const uint8_t *payload, size_t len) {
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t head = 2 + (len < 126 ? 0 : len < 65536 ? 2 : 8) + 4;
    f->data = malloc(head + len);
    if (!f->data) die("malloc");
    uint8_t *p = f->data;
    *p++ = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        *p++ = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        *p++ = 0x80 | 126;
        *p++ = (uint8_t)(len >> 8);
        *p++ = (uint8_t)len;
    } else {
        *p++ = 0x80 | 127;
        for (int i = 7; i >= 0; i--) *p++ = (uint8_t)((uint64_t)len >> (8 * i));
    }
    memcpy(p, key, 4);
    p += 4;
    for (size_t i = 0; i < len; i++) p[i] = payload[i] ^ key[i & 3];
    f->len = head + len;
    f->payload = len;
    f->opcode = opcode;
}

static void set_events(struct conn *c, int out) {
    if (c->out_armed == out) return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.u64 = (uint64_t)(c - conns)};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
    c->out_armed = out;
}

static void kill_conn(struct conn *c, const char *why) {
    if (c->state == DEAD) return;
    if (c->state == OPEN && (opt.mode == MODE_ECHO || c->ready)) {
        n_open--;
        n_lost++;
        note_error("connection lost: %s", why);
    } else {
        n_handshaking--;
        n_failed++;
        note_error("connection failed: %s", why);
    }
    if (c->waiting && opt.mode == MODE_IDLE && check_pending && !c->checked) check_answered++;
    close(c->fd);
    c->state = DEAD;
    c->waiting = 0;
}

/* Write what is pending: a started data frame first, then a control frame, then the rest. */
static int flush(struct conn *c) {
    for (;;) {
        const uint8_t *p;
        size_t left;
        int data;
        if (c->msg && c->msg_off > 0 && c->msg_off < c->msg->len) {
            data = 1;
        } else if (c->ctl_off < c->ctl_len) {
            data = 0;
        } else if (c->msg && c->msg_off < c->msg->len) {
            data = 1;
        } else {
            break;
        }
        if (data) {
            p = c->msg->data + c->msg_off;
            left = c->msg->len - c->msg_off;
        } else {
            p = c->ctl + c->ctl_off;
            left = c->ctl_len - c->ctl_off;
        }
        ssize_t n = send(c->fd, p, left, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                set_events(c, 1);
                return 0;
            }
            kill_conn(c, strerror(errno));
            return -1;
        }
        if (data) {
            c->msg_off += (size_t)n;
            if (c->msg_off == c->msg->len) c->msg = NULL;
        } else {
            c->ctl_off += (size_t)n;
            if (c->ctl_off == c->ctl_len) c->ctl_off = c->ctl_len = 0;
        }
    }
    set_events(c, 0);
    return 0;
}

static int send_message(struct conn *c, const struct frame *f) {
    c->msg = f;
    c->msg_off = 0;
    c->waiting = 1;
    c->sent_at = now();
    return flush(c);
}

static int on_message(struct conn *c) {
    const struct frame *expected = opt.mode == MODE_ECHO ? &data_frame : &idle_frame;
    if (!c->waiting || c->msg_opcode != expected->opcode || c->msg_bytes != expected->payload) {
        bad_echoes++;
        kill_conn(c, "unexpected message");
        return -1;
    }
    c->waiting = 0;
    double t = now();
    if (opt.mode == MODE_IDLE) {
        if (!c->ready) {
            c->ready = 1;
            n_handshaking--;
            n_open++;
        } else if (check_pending && !c->checked) {
            c->checked = 1;
            check_answered++;
        }
        return 0;
    }
    if (measuring && t >= window_start) {
        messages++;
        payload_bytes += c->msg_bytes;
        if (n_samples == cap_samples) {
            cap_samples = cap_samples ? cap_samples * 2 : 1 << 20;
            samples = realloc(samples, cap_samples * sizeof *samples);
            if (!samples) die("realloc");
        }
        samples[n_samples++] = (uint64_t)((t - c->sent_at) * 1e9);
    }
    if (measuring && t >= window_end) return 0;  /* done: send nothing more */
    return send_message(c, &data_frame);
}

static int on_frame_done(struct conn *c) {
    c->in_frame = 0;
    c->hdr_len = 0;
    switch (c->opcode) {
    case 0x9: /* ping: answer with a masked pong carrying the same payload */
        if (c->ctl_len) return 0;  /* a pong is still going out; one is enough */
        c->ctl[0] = 0x8A;
        c->ctl[1] = (uint8_t)(0x80 | c->cpay_len);
        memset(c->ctl + 2, 0, 4);  /* mask key 0: payload unchanged */
        memcpy(c->ctl + 6, c->cpay, c->cpay_len);
        c->ctl_len = 6 + c->cpay_len;
        c->ctl_off = 0;
        return flush(c);
    case 0xA:
        return 0;
    case 0x8:
        kill_conn(c, "closed by the server");
        return -1;
    case 0x0: case 0x1: case 0x2:
        return c->fin ? on_message(c) : 0;
    default:
        kill_conn(c, "unknown opcode");
        return -1;
    }
}

static int on_bytes(struct conn *c, const uint8_t *p, size_t n) {
    while (n) {
        if (!c->in_frame) {
            size_t need = 2;
            if (c->hdr_len >= 2) {
                unsigned len7 = c->hdr[1] & 0x7f;
                need += (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((c->hdr[1] & 0x80) ? 4 : 0);
            }
            while (n && c->hdr_len < need) {
                c->hdr[c->hdr_len++] = *p++;
                n--;
                if (c->hdr_len == 2) {
                    unsigned len7 = c->hdr[1] & 0x7f;
                    need += (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((c->hdr[1] & 0x80) ? 4 : 0);
                }
            }
            if (c->hdr_len < need) return 0;
            if (c->hdr[1] & 0x80) {
                kill_conn(c, "masked frame from the server");
                return -1;
            }
            if (c->hdr[0] & 0x70) {
                kill_conn(c, "compressed or reserved bits set");
                return -1;
            }
            c->fin = c->hdr[0] >> 7;
            c->opcode = c->hdr[0] & 0x0f;
            unsigned len7 = c->hdr[1] & 0x7f;
            uint64_t len = len7;
            if (len7 == 126) {
                len = ((uint64_t)c->hdr[2] << 8) | c->hdr[3];
            } else if (len7 == 127) {
                len = 0;
                for (int i = 0; i < 8; i++) len = (len << 8) | c->hdr[2 + i];
            }
            c->remaining = len;
            c->in_frame = 1;
            if (c->opcode >= 0x8) {
                if (len > 125) {
                    kill_conn(c, "control frame too long");
                    return -1;
                }
                c->cpay_len = 0;
            } else if (c->opcode != 0) {
                c->msg_opcode = c->opcode;
                c->msg_bytes = 0;
            }
            if (len == 0 && on_frame_done(c) < 0) return -1;
            continue;
        }
        size_t take = n < c->remaining ? n : (size_t)c->remaining;
        if (c->opcode >= 0x8) {
            memcpy(c->cpay + c->cpay_len, p, take);
            c->cpay_len += take;
        } else {
            c->msg_bytes += take;
        }
        c->remaining -= take;
        p += take;
        n -= take;
        if (c->remaining == 0 && on_frame_done(c) < 0) return -1;
    }
    return 0;
}

static void on_open(struct conn *c) {
    c->state = OPEN;
    if (opt.mode == MODE_ECHO) {
        n_handshaking--;
        n_open++;
        if (measuring) send_message(c, &data_frame);
    } else {
        send_message(c, &idle_frame);  /* counted as open when it comes back */
    }
}

static int on_handshake_bytes(struct conn *c, const uint8_t *p, size_t n) {
    size_t room = MAX_HEAD - 1 - c->head_len;
    size_t take = n < room ? n : room;
    memcpy(c->head + c->head_len, p, take);
    c->head_len += take;
    c->head[c->head_len] = 0;
    char *end = strstr(c->head, "\r\n\r\n");
    if (!end) {
        if (c->head_len == MAX_HEAD - 1) {
            kill_conn(c, "handshake response too long");
            return -1;
        }
        return 0;
    }
    if (strncmp(c->head, "HTTP/1.1 101", 12) != 0) {
        char status[64];
        snprintf(status, sizeof status, "%.*s", (int)strcspn(c->head, "\r\n"), c->head);
        kill_conn(c, status);
        return -1;
    }
    size_t used = (size_t)(end + 4 - c->head) - (c->head_len - take);  /* of this chunk */
    on_open(c);
    if (c->state == DEAD) return -1;
    return on_bytes(c, p + used, n - used);
}

static void start_conn(struct conn *c) {
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = CONNECTING;
    n_started++;
    n_handshaking++;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = (uint64_t)(c - conns)};
    c->out_armed = 1;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
        kill_conn(c, strerror(errno));
    }
}

static void on_event(struct conn *c, uint32_t events) {
    static uint8_t buf[256 * 1024];
    if (c->state == DEAD) return;
    if (c->state == CONNECTING) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            kill_conn(c, strerror(err));
            return;
        }
        c->state = HANDSHAKE;
        ssize_t n = send(c->fd, request, request_len, MSG_NOSIGNAL);
        if (n != (ssize_t)request_len) {
            kill_conn(c, n < 0 ? strerror(errno) : "short handshake write");
            return;
        }
        set_events(c, 0);
        return;
    }
    if (events & EPOLLOUT) {
        if (flush(c) < 0) return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        for (int round = 0; round < 4; round++) {
            ssize_t n = recv(c->fd, buf, sizeof buf, 0);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN) return;
                kill_conn(c, strerror(errno));
                return;
            }
            if (n == 0) {
                kill_conn(c, "closed by the server (EOF)");
                return;
            }
            int rc = c->state == HANDSHAKE ? on_handshake_bytes(c, buf, (size_t)n)
                                           : on_bytes(c, buf, (size_t)n);
            if (rc < 0 || (size_t)n < sizeof buf) return;
        }
    }
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double percentile_ms(double pct) {
    if (!n_samples) return 0.0;
    size_t i = (size_t)(pct / 100.0 * (double)(n_samples - 1) + 0.5);
    return (double)samples[i] / 1e6;
}

static void usage(void) {
    fprintf(stderr,
            "usage: wsload echo|idle -p PORT [-h HOST] [-u PATH] [-c CONNS] [-d SECONDS]\n"
            "              [-s BYTES] [-b] [-t MAX_SECONDS]\n");
    exit(2);
}

/* Start connections up to CONNS, at most `limit` handshaking at once. */
static void top_up(int limit) {
    while (n_started < opt.conns && n_handshaking < limit) start_conn(&conns[n_started]);
}

static int stdin_eof, check_requested;

static void loop_once(int timeout_ms) {
    struct epoll_event events[512];
    int n = epoll_wait(ep, events, 512, timeout_ms);
    if (n < 0) {
        if (errno == EINTR) return;
        die("epoll_wait");
    }
    for (int i = 0; i < n; i++) {
        if (events[i].data.u64 == STDIN_TAG) {
            char line[256];
            ssize_t got = read(0, line, sizeof line - 1);
            if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            if (got <= 0) {
                stdin_eof = 1;
                epoll_ctl(ep, EPOLL_CTL_DEL, 0, NULL);
                continue;
            }
            line[got] = 0;
            if (strstr(line, "check")) check_requested = 1;
            continue;
        }
        on_event(&conns[events[i].data.u64], events[i].events);
    }
}

static int run_echo(void) {
    /* Open every connection (at most 256 handshaking at once), then measure. */
    double deadline = now() + 60.0;
    while (n_open + n_failed < opt.conns) {
        top_up(256);
        loop_once(100);
        if (now() > deadline) break;
    }
    if (n_failed || n_open < opt.conns) {
        fprintf(stderr, "wsload: %d of %d connections opened (%s)\n", n_open, opt.conns,
                first_error[0] ? first_error : "timeout");
        return 1;
    }
    measuring = 1;
    window_start = now();
    window_end = window_start + opt.duration;
    double cpu0 = cpu_time();
    for (int i = 0; i < opt.conns; i++) {
        if (conns[i].state == OPEN) send_message(&conns[i], &data_frame);
    }
    while (n_open > 0) {
        double left = window_end - now();
        if (left <= 0) break;
        loop_once(left < 0.1 ? (int)(left * 1000) + 1 : 100);
    }
    double elapsed = now() - window_start;
    double cpu = (cpu_time() - cpu0) / elapsed;
    qsort(samples, n_samples, sizeof *samples, cmp_u64);
    printf("{\"messages\": %llu, \"seconds\": %.3f, \"msgs_per_s\": %.1f, \"mb_per_s\": %.2f, "
           "\"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, "
           "\"errors\": %d, \"bad_echoes\": %llu, \"cpu\": %.3f, \"connections\": %d, "
           "\"size\": %zu}\n",
           (unsigned long long)messages, elapsed, (double)messages / elapsed,
           (double)payload_bytes / elapsed / 1e6, percentile_ms(50), percentile_ms(90),
           percentile_ms(99), n_samples ? (double)samples[n_samples - 1] / 1e6 : 0.0, n_lost,
           (unsigned long long)bad_echoes, cpu, opt.conns, opt.size);
    fflush(stdout);
    if (n_lost) fprintf(stderr, "wsload: %s\n", first_error);
    return n_lost || bad_echoes ? 1 : 0;
}

static int run_idle(void) {
    double start = now();
    double stop_at = start + opt.max_seconds;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = STDIN_TAG};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) < 0) stdin_eof = 1;  /* not pollable: no commands */
    while (n_open + n_failed + n_lost < opt.conns && now() < stop_at) {
        top_up(100);
        loop_once(100);
    }
    printf("{\"event\": \"open\", \"open\": %d, \"failed\": %d, \"lost\": %d, \"seconds\": %.3f%s%s%s}\n",
           n_open, n_failed, n_lost, now() - start, first_error[0] ? ", \"error\": \"" : "",
           first_error, first_error[0] ? "\"" : "");
    fflush(stdout);
    while (!stdin_eof && now() < stop_at) {
        loop_once(100);
        if (check_requested && !check_pending) {
            check_requested = 0;
            check_pending = 1;
            check_answered = 0;
            check_deadline = now() + 30.0;
            int count = 0;
            for (int i = 0; i < opt.conns; i++) {
                struct conn *c = &conns[i];
                if (c->state != OPEN) continue;
                c->checked = 0;
                count++;
            }
            int sent = 0;
            for (int i = 0; i < opt.conns; i++) {
                struct conn *c = &conns[i];
                if (c->state != OPEN) continue;
                send_message(c, &idle_frame);
                sent++;
                if (sent % 200 == 0) loop_once(0);
            }
            while (check_answered < count && now() < check_deadline) {
                loop_once(100);
            }
            int alive = 0;
            for (int i = 0; i < opt.conns; i++) alive += conns[i].state == OPEN && conns[i].checked;
            printf("{\"event\": \"check\", \"alive\": %d, \"count\": %d}\n", alive, opt.conns);
            fflush(stdout);
            check_pending = 0;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    if (strcmp(argv[1], "echo") == 0) opt.mode = MODE_ECHO;
    else if (strcmp(argv[1], "idle") == 0) opt.mode = MODE_IDLE;
    else usage();
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-b") == 0) { opt.binary = 1; continue; }
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (strcmp(a, "-p") == 0) opt.port = atoi(v);
        else if (strcmp(a, "-h") == 0) opt.host = v;
        else if (strcmp(a, "-u") == 0) opt.path = v;
        else if (strcmp(a, "-c") == 0) opt.conns = atoi(v);
        else if (strcmp(a, "-d") == 0) opt.duration = atof(v);
        else if (strcmp(a, "-s") == 0) opt.size = (size_t)atoll(v);
        else if (strcmp(a, "-t") == 0) opt.max_seconds = atof(v);
        else usage();
    }
    if (opt.port <= 0 || opt.conns <= 0 || opt.duration <= 0) usage();
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &addr.sin_addr) != 1) {
        fprintf(stderr, "wsload: -h takes an IPv4 address\n");
        return 2;
    }
    request_len = (size_t)snprintf(request, sizeof request,
        "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        opt.path, opt.host, opt.port);

    uint8_t *payload = malloc(opt.size ? opt.size : 1);
    if (!payload) die("malloc");
    uint64_t x = 88172645463325252ULL;  /* xorshift: reproducible bytes */
    for (size_t i = 0; i < opt.size; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        payload[i] = opt.binary ? (uint8_t)x : (uint8_t)('a' + x % 26);
    }
    build_frame(&data_frame, opt.binary ? 0x2 : 0x1, payload, opt.size);
    build_frame(&idle_frame, 0x1, (const uint8_t *)IDLE_MESSAGE, strlen(IDLE_MESSAGE));
    free(payload);

    conns = calloc((size_t)opt.conns, sizeof *conns);
    if (!conns) die("calloc");
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    int rc = opt.mode == MODE_ECHO ? run_echo() : run_idle();
    for (int i = 0; i < n_started; i++) {
        if (conns[i].state != DEAD) close(conns[i].fd);
    }
    return rc;
}
