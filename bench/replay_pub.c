/* Replay an `eldercare sim record` file against a broker at a multiple of real time.
 *
 * Reads the whole recording from stdin (one line per publish:
 * offset_ms TAB qos TAB retain TAB topic TAB payload, see firmware_sim/record.py), opens
 * -c connections with libmosquitto (each with its own network thread), then publishes line k
 * at start + offset_k / speed, on the connection its device hashes to (so each device's
 * messages keep their order), with the line's QoS and retain flag and -P put before the topic.
 *
 * Prints on stdout, flushed at once:
 *   start_ms <Unix ms of offset 0>          when the connections are up and the clock starts
 *   done sent <n> acked <n> max_late_ms <x> late_ms_p99 <y> elapsed_s <z>
 * where `late` is how far a publish call fell behind its scheduled time (the replayer's own
 * lag; a run whose max_late_ms is large did not keep the multiple it was asked for) and
 * `acked` counts QoS 1 PUBACKs plus QoS 0 messages written to the socket.
 *
 * Build: cc -O2 -o replay_pub replay_pub.c -l:libmosquitto.so.1 -lpthread
 * (the library comes with mosquitto-clients; its header with libmosquitto-dev, optional).
 * Exit status: 0 when every message was acknowledged within -w seconds after the last
 * publish, 1 otherwise, 2 on a usage or connection error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<mosquitto.h>)
#include <mosquitto.h>
#define HAVE_MOSQUITTO_H 1
#endif
#endif
#ifndef HAVE_MOSQUITTO_H
/* The few libmosquitto 2.0 entry points used here (the ABI of libmosquitto.so.1). */
struct mosquitto;
int mosquitto_lib_init(void);
int mosquitto_lib_cleanup(void);
struct mosquitto *mosquitto_new(const char *id, bool clean_session, void *obj);
void mosquitto_destroy(struct mosquitto *mosq);
int mosquitto_connect(struct mosquitto *mosq, const char *host, int port, int keepalive);
int mosquitto_disconnect(struct mosquitto *mosq);
int mosquitto_publish(struct mosquitto *mosq, int *mid, const char *topic, int payloadlen,
                      const void *payload, int qos, bool retain);
int mosquitto_loop_start(struct mosquitto *mosq);
int mosquitto_loop_stop(struct mosquitto *mosq, bool force);
int mosquitto_max_inflight_messages_set(struct mosquitto *mosq, unsigned int max_inflight);
void mosquitto_connect_callback_set(struct mosquitto *mosq,
                                    void (*on_connect)(struct mosquitto *, void *, int));
void mosquitto_publish_callback_set(struct mosquitto *mosq,
                                    void (*on_publish)(struct mosquitto *, void *, int));
const char *mosquitto_strerror(int mosq_errno);
#endif

typedef struct {
    long offset_ms;
    int qos, retain;
    const char *topic; /* NUL-terminated, inside the input buffer */
    const char *payload;
    int payload_len;
} line_t;

static atomic_long acked;
static atomic_int connected;

static void on_connect(struct mosquitto *m, void *obj, int rc) {
    (void)m;
    (void)obj;
    if (rc == 0) atomic_fetch_add(&connected, 1);
}

static void on_publish(struct mosquitto *m, void *obj, int mid) {
    (void)m;
    (void)obj;
    (void)mid;
    atomic_fetch_add(&acked, 1);
}

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_until(double t) {
    struct timespec ts;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static char *read_all(FILE *f, size_t *len) {
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) return NULL;
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    *len = n;
    return buf;
}

/* FNV-1a of the topic up to its last '/': the device part, so a device stays on one link. */
static uint32_t device_hash(const char *topic) {
    const char *end = strrchr(topic, '/');
    if (!end) end = topic + strlen(topic);
    uint32_t h = 2166136261u;
    for (const char *p = topic; p < end; p++) h = (h ^ (uint8_t)*p) * 16777619u;
    return h;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void usage(void) {
    fprintf(stderr,
            "usage: replay_pub [-h host] [-p port] [-P topic-prefix] [-s speed] [-c connections]\n"
            "                  [-i client-id-base] [-w ack-wait-s] < recording\n");
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *prefix = "", *id_base = "replay";
    int port = 1883, nconn = 4, opt;
    double speed = 1.0, wait_s = 60.0;
    while ((opt = getopt(argc, argv, "h:p:P:s:c:i:w:")) != -1) {
        switch (opt) {
            case 'h': host = optarg; break;
            case 'p': port = atoi(optarg); break;
            case 'P': prefix = optarg; break;
            case 's': speed = atof(optarg); break;
            case 'c': nconn = atoi(optarg); break;
            case 'i': id_base = optarg; break;
            case 'w': wait_s = atof(optarg); break;
            default: usage(); return 2;
        }
    }
    if (speed <= 0 || nconn < 1) {
        usage();
        return 2;
    }
    size_t len;
    char *buf = read_all(stdin, &len);
    if (!buf) {
        fprintf(stderr, "replay_pub: out of memory\n");
        return 2;
    }
    size_t nlines = 0, cap = 1024;
    line_t *lines = malloc(cap * sizeof *lines);
    size_t prefix_len = strlen(prefix), max_topic = 0;
    for (char *p = buf, *end = buf + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) nl = end;
        char *f[5];
        int k = 0;
        f[k++] = p;
        for (char *q = p; q < nl && k < 5; q++)
            if (*q == '\t') {
                *q = '\0';
                f[k++] = q + 1;
            }
        if (k != 5) {
            fprintf(stderr, "replay_pub: line %zu has %d fields, not 5\n", nlines + 1, k);
            return 2;
        }
        if (nlines == cap) {
            cap *= 2;
            lines = realloc(lines, cap * sizeof *lines);
        }
        line_t *l = &lines[nlines++];
        l->offset_ms = atol(f[0]);
        l->qos = atoi(f[1]);
        l->retain = atoi(f[2]);
        l->topic = f[3];
        l->payload = f[4];
        l->payload_len = (int)(nl - f[4]);
        size_t tl = strlen(f[3]);
        if (tl > max_topic) max_topic = tl;
        if (nl < end) *nl = '\0';
        p = nl + 1;
    }

    mosquitto_lib_init();
    struct mosquitto **links = calloc((size_t)nconn, sizeof *links);
    char id[256];
    for (int i = 0; i < nconn; i++) {
        snprintf(id, sizeof id, "%s-%d", id_base, i);
        links[i] = mosquitto_new(id, true, NULL);
        mosquitto_max_inflight_messages_set(links[i], 1000);
        mosquitto_connect_callback_set(links[i], on_connect);
        mosquitto_publish_callback_set(links[i], on_publish);
        int rc = mosquitto_connect(links[i], host, port, 60);
        if (rc != 0) {
            fprintf(stderr, "replay_pub: connect %s:%d: %s\n", host, port, mosquitto_strerror(rc));
            return 2;
        }
        mosquitto_loop_start(links[i]);
    }
    double deadline = mono_s() + 10.0;
    while (atomic_load(&connected) < nconn) {
        if (mono_s() > deadline) {
            fprintf(stderr, "replay_pub: only %d of %d connections up\n", atomic_load(&connected),
                    nconn);
            return 2;
        }
        usleep(1000);
    }

    char *topic = malloc(prefix_len + max_topic + 1);
    memcpy(topic, prefix, prefix_len);
    double *late = malloc((nlines ? nlines : 1) * sizeof *late);
    double max_late = 0;
    double t0 = mono_s();
    printf("start_ms %lld\n", (long long)wall_ms());
    fflush(stdout);
    for (size_t k = 0; k < nlines; k++) {
        line_t *l = &lines[k];
        double due = t0 + (double)l->offset_ms / 1000.0 / speed;
        double now = mono_s();
        if (now < due) {
            sleep_until(due);
            now = due;
        }
        late[k] = (now - due) * 1000.0;
        if (late[k] > max_late) max_late = late[k];
        strcpy(topic + prefix_len, l->topic);
        struct mosquitto *m = links[device_hash(l->topic) % (uint32_t)nconn];
        int rc = mosquitto_publish(m, NULL, topic, l->payload_len, l->payload, l->qos,
                                   l->retain != 0);
        if (rc != 0) fprintf(stderr, "replay_pub: publish: %s\n", mosquitto_strerror(rc));
    }
    double sent_at = mono_s();
    while (atomic_load(&acked) < (long)nlines && mono_s() - sent_at < wait_s) usleep(1000);
    double elapsed = mono_s() - t0;
    qsort(late, nlines, sizeof *late, cmp_double);
    double p99 = nlines ? late[(size_t)((double)(nlines - 1) * 0.99)] : 0.0;
    long got = atomic_load(&acked);
    printf("done sent %zu acked %ld max_late_ms %.1f late_ms_p99 %.1f elapsed_s %.3f\n", nlines,
           got, max_late, p99, elapsed);
    fflush(stdout);
    for (int i = 0; i < nconn; i++) {
        mosquitto_disconnect(links[i]);
        mosquitto_loop_stop(links[i], false);
        mosquitto_destroy(links[i]);
    }
    mosquitto_lib_cleanup();
    return got >= (long)nlines ? 0 : 1;
}
