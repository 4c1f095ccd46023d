// Where a shared log's 2-thread append time goes, without the log: each "append" writes one
// 128-byte frame (two lines, the size of a 64 B record in log format 5) with non-temporal stores
// and one SFENCE, into a file in /dev/shm mapped MAP_SHARED|MAP_POPULATE (the bench's backing), and
// adds only the coordination the mode names. Threads are pinned to CPUs 0 and 1.
//
//   gcc -O2 -mavx2 -pthread coord.c -o coord
//   ./coord MODE THREADS [OPS]      (OPS per thread, default 1000000; prints Mops/s over all threads)
//
// Modes (each adds one thing to the one before it, unless said otherwise):
//   split        each thread its own region, consecutive frames (one log per thread: nothing shared)
//   interleaved  one region, thread t writes frames 2i+t (the shared log's placement, no coordination)
//   faa          the frame's position from a fetch-and-add on one shared word (an Interlocked.Add reservation)
//   store        like interleaved, plus a plain store of the thread's own word in one shared line before
//                the frame (no locked instruction: what a fence costs when it drains such a store)
//   publish      faa, plus a plain store of the frame's end to a second shared line after the fence
//                (a completion cursor nobody waits for)
//   inorder      faa, then wait until the completion word equals the frame's start and store its end:
//                the log's protocol reduced to its two shared words (prefix durability)
//   oneline      inorder with both words on one cache line
//   flags        faa, then wait for the predecessor's done flag (a line per record, written once by its
//                owner) and set its own: no completion word that both threads write
//   sfence-only  no frame: a plain store of the thread's own word in one shared line, then SFENCE
//   mfence-only  no frame: the same store, then MFENCE
//   combine      flat combining: a thread posts its request in its own line; whoever takes a lock
//                writes every posted frame, one SFENCE for all, and marks them done
#define _GNU_SOURCE
#include <fcntl.h>
#include <immintrin.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define REGION (256L << 20)
#define FRAME 128

typedef struct { _Alignas(64) _Atomic long word; char pad[56]; } line_t;

static char *region[2];
static long ops;
static int threads;
static const char *const modes[] = { "split", "interleaved", "faa", "store", "publish", "inorder", "oneline", "flags", "sfence-only", "mfence-only", "combine" };
static int mode = -1;
static line_t reserved, completed, shared_line, lock_line, request[2];
static _Alignas(64) _Atomic long both[8];
static line_t done_flag[4096];
static long combined_tail;
static pthread_barrier_t start_barrier;

static void write_frame(char *at)
{
    __m256i v = _mm256_set1_epi8(7);
    for (int i = 0; i < FRAME; i += 32)
    {
        _mm256_stream_si256((__m256i *)(at + i), v);
    }
}

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void wait_for(_Atomic long *word, long value)
{
    while (atomic_load_explicit(word, memory_order_acquire) != value)
    {
        _mm_pause();
    }
}

static void combine(void)
{
    int mine[2], n = 0;
    for (int j = 0; j < threads; j++)
    {
        if (atomic_load_explicit(&request[j].word, memory_order_acquire) == 1)
        {
            write_frame(region[0] + combined_tail % REGION);
            combined_tail += FRAME;
            mine[n++] = j;
        }
    }
    _mm_sfence();
    for (int i = 0; i < n; i++)
    {
        atomic_store_explicit(&request[mine[i]].word, 2, memory_order_release);
    }
}

static void *run(void *arg)
{
    long t = (long)arg;
    pin((int)t);
    pthread_barrier_wait(&start_barrier);
    for (long i = 0; i < ops; i++)
    {
        long at;
        if (mode == 0) // split
        {
            write_frame(region[t] + (i * FRAME) % REGION);
            _mm_sfence();
        }
        else if (mode == 1) // interleaved
        {
            write_frame(region[0] + ((i * threads + t) * FRAME) % REGION);
            _mm_sfence();
        }
        else if (mode == 2) // faa
        {
            at = atomic_fetch_add(&reserved.word, FRAME);
            write_frame(region[0] + at % REGION);
            _mm_sfence();
        }
        else if (mode == 3) // store
        {
            ((volatile long *)&shared_line)[t] = i;
            write_frame(region[0] + ((i * threads + t) * FRAME) % REGION);
            _mm_sfence();
        }
        else if (mode == 4) // publish
        {
            at = atomic_fetch_add(&reserved.word, FRAME);
            write_frame(region[0] + at % REGION);
            _mm_sfence();
            atomic_store_explicit(&completed.word, at + FRAME, memory_order_release);
        }
        else if (mode == 5) // inorder
        {
            at = atomic_fetch_add(&reserved.word, FRAME);
            write_frame(region[0] + at % REGION);
            _mm_sfence();
            wait_for(&completed.word, at);
            atomic_store_explicit(&completed.word, at + FRAME, memory_order_release);
        }
        else if (mode == 6) // oneline
        {
            at = atomic_fetch_add(&both[0], FRAME);
            write_frame(region[0] + at % REGION);
            _mm_sfence();
            wait_for(&both[1], at);
            atomic_store_explicit(&both[1], at + FRAME, memory_order_release);
        }
        else if (mode == 7) // flags
        {
            at = atomic_fetch_add(&reserved.word, FRAME);
            write_frame(region[0] + at % REGION);
            _mm_sfence();
            long n = at / FRAME;
            if (n > 0)
            {
                wait_for(&done_flag[(n - 1) % 4096].word, n);
            }
            atomic_store_explicit(&done_flag[n % 4096].word, n + 1, memory_order_release);
        }
        else if (mode == 8) // sfence-only
        {
            ((volatile long *)&shared_line)[t] = i;
            _mm_sfence();
        }
        else if (mode == 9) // mfence-only
        {
            ((volatile long *)&shared_line)[t] = i;
            _mm_mfence();
        }
        else if (mode == 10) // combine
        {
            atomic_store_explicit(&request[t].word, 1, memory_order_release);
            while (atomic_load_explicit(&request[t].word, memory_order_acquire) != 2)
            {
                long free_lock = 0;
                if (atomic_load_explicit(&lock_line.word, memory_order_relaxed) == 0
                    && atomic_compare_exchange_strong(&lock_line.word, &free_lock, 1))
                {
                    combine();
                    atomic_store_explicit(&lock_line.word, 0, memory_order_release);
                }
                else
                {
                    _mm_pause();
                }
            }
            atomic_store_explicit(&request[t].word, 0, memory_order_relaxed);
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3 || (threads = atoi(argv[2])) < 1 || threads > 2)
    {
        fprintf(stderr, "usage: coord split|interleaved|faa|store|publish|inorder|oneline|flags|sfence-only|mfence-only|combine 1|2 [ops per thread]\n");
        return 2;
    }
    for (int m = 0; m < (int)(sizeof modes / sizeof modes[0]); m++)
    {
        if (!strcmp(argv[1], modes[m]))
        {
            mode = m;
        }
    }
    if (mode < 0)
    {
        fprintf(stderr, "unknown mode %s\n", argv[1]);
        return 2;
    }
    ops = argc > 3 ? atol(argv[3]) : 1000000;
    for (int i = 0; i < 2; i++)
    {
        char path[64];
        snprintf(path, sizeof path, "/dev/shm/coord-%d-%d", getpid(), i);
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd < 0 || ftruncate(fd, REGION) != 0)
        {
            perror(path);
            return 1;
        }
        region[i] = mmap(0, REGION, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
        unlink(path);
        close(fd);
        if (region[i] == MAP_FAILED)
        {
            perror("mmap");
            return 1;
        }
    }
    pthread_barrier_init(&start_barrier, 0, threads + 1);
    pthread_t worker[2];
    for (long t = 0; t < threads; t++)
    {
        pthread_create(&worker[t], 0, run, (void *)t);
    }
    struct timespec a, b;
    pthread_barrier_wait(&start_barrier);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int t = 0; t < threads; t++)
    {
        pthread_join(worker[t], 0);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
    printf("%s %d threads: %.2f Mops/s, %.0f ns per append per thread\n", modes[mode], threads, ops * threads / ns * 1e3, ns / ops);
    return 0;
}
