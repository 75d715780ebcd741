// The connect loop and the backend of bench/service-lb.ts, compiled at bench time with the system C
// compiler (never committed as a binary): Node's event loop would add tens of microseconds of its own to
// every connect() and hide the differences being measured.
//
//   serve PORT...                  accept on 0.0.0.0:PORT for each PORT and close at once; prints
//                                  "ready" when listening; exits on SIGTERM or after 3600 s.
//   connect TARGETS OUT N MS SEED  N blocking connect()s (after 200 unrecorded warm-up ones), each to a
//                                  target ("a.b.c.d port" lines of TARGETS) chosen at random (xorshift
//                                  from SEED, so every mode walks the same sequence), stopping early after
//                                  MS milliseconds. Each socket is closed with RST (SO_LINGER 0: no
//                                  TIME_WAIT). Writes each connect()'s latency in ns, one per line, to
//                                  OUT, and prints {"count", "failed", "firstError", "elapsedNs"} as JSON.

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int serve(int argc, char **argv) {
  int ep = epoll_create1(0);
  if (ep < 0) return perror("epoll_create1"), 1;
  for (int i = 0; i < argc; i++) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[i]))};
    if (bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s, 4096) != 0) return perror(argv[i]), 1;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = s};
    epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
  }
  alarm(3600);
  printf("ready\n");
  fflush(stdout);
  struct epoll_event evs[16];
  for (;;) {
    int n = epoll_wait(ep, evs, 16, -1);
    for (int i = 0; i < n; i++) {
      for (;;) {
        int c = accept4(evs[i].data.fd, NULL, NULL, SOCK_NONBLOCK);
        if (c < 0) break;
        close(c);
      }
    }
  }
}

struct target {
  struct sockaddr_in addr;
};

static uint64_t rng;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static int connect_loop(const char *targets_path, const char *out_path, long count, long max_ms, uint64_t seed) {
  FILE *f = fopen(targets_path, "r");
  if (!f) return perror(targets_path), 1;
  size_t cap = 1024, n = 0;
  struct target *t = malloc(cap * sizeof(*t));
  char ip[64];
  int port;
  while (fscanf(f, "%63s %d", ip, &port) == 2) {
    if (n == cap) t = realloc(t, (cap *= 2) * sizeof(*t));
    memset(&t[n], 0, sizeof(t[n]));
    t[n].addr.sin_family = AF_INET;
    t[n].addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &t[n].addr.sin_addr) != 1) return fprintf(stderr, "bad target %s\n", ip), 1;
    n++;
  }
  fclose(f);
  if (n == 0) return fprintf(stderr, "no targets\n"), 1;
  rng = seed == 0 ? 88172645463325252ull : seed;
  uint64_t *lat = malloc((size_t)count * sizeof(*lat));
  long done = 0, failed = 0, warm = 200;
  int first_error = 0;
  struct linger rst = {.l_onoff = 1, .l_linger = 0};
  uint64_t start = 0, deadline = 0;
  for (long i = 0; done < count; i++) {
    if (i == warm) {
      start = now_ns();
      deadline = start + (uint64_t)max_ms * 1000000ull;
    }
    if (i >= warm && now_ns() > deadline) break;
    struct target *to = &t[next_rand() % n];
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return perror("socket"), 1;
    setsockopt(s, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
    uint64_t t0 = now_ns();
    int r = connect(s, (struct sockaddr *)&to->addr, sizeof(to->addr));
    uint64_t t1 = now_ns();
    if (r != 0) {
      if (first_error == 0) first_error = errno;
      if (i >= warm) failed++;
    } else if (i >= warm) {
      lat[done++] = t1 - t0;
    }
    close(s);
  }
  uint64_t elapsed = now_ns() - start;
  FILE *out = fopen(out_path, "w");
  if (!out) return perror(out_path), 1;
  for (long i = 0; i < done; i++) fprintf(out, "%llu\n", (unsigned long long)lat[i]);
  fclose(out);
  printf("{\"count\":%ld,\"failed\":%ld,\"firstError\":\"%s\",\"elapsedNs\":%llu}\n", done, failed,
         first_error == 0 ? "" : strerror(first_error), (unsigned long long)elapsed);
  return 0;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc >= 3 && strcmp(argv[1], "serve") == 0) return serve(argc - 2, argv + 2);
  if (argc == 7 && strcmp(argv[1], "connect") == 0)
    return connect_loop(argv[2], argv[3], atol(argv[4]), atol(argv[5]), strtoull(argv[6], NULL, 10));
  fprintf(stderr, "usage: serve PORT... | connect TARGETS OUT N MS SEED\n");
  return 2;
}
