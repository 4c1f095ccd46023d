# Buckets perf-script stacks of a Garnet server (see profile.sh): waits, device code, then the leaf frame.
import sys, collections, re
wait = [("waiting: thread-pool spin/yield (sched_yield from LowLevelLifoSemaphore / Task.SpinWait)", re.compile(r"sched_yield|LowLevelLifoSemaphore|Task::SpinWait")),
        ("waiting: blocked (futex, Task.InternalWaitCore)", re.compile(r"InternalWaitCore|futex_wait|__futex_abstimed"))]
dev = [("device: DirectPmem volume (copy + flush + fence)", re.compile(r"DirectPmem\.|PersistOps|CopyEngine|FlushCode")),
       ("device: file (RandomAccess pwrite, O_DIRECT, block layer)", re.compile(r"RandomAccess|iomap|blk_|virtio|iowrite16|ext4_|pwrite"))]
leafcats = [("network: kernel TCP/socket path", re.compile(r"tcp_|sock|skb|ip_|__sys_recv|__sys_send|epoll|net_|napi|__dev_queue|loopback|inet")),
            ("Garnet/Tsavorite code", re.compile(r"Garnet\.|Tsavorite\.")),
            (".NET sockets/thread pool code", re.compile(r"System\.Net|ThreadPool|System\.Threading")),]
counts = collections.Counter(); total = 0; stack = []
def flush():
    global total
    if not stack: return
    total += 1
    s = "\n".join(stack)
    for name, rx in wait + dev:
        if rx.search(s): counts[name] += 1; return
    for name, rx in leafcats:
        if rx.search(stack[0]): counts[name] += 1; return
    counts["other (runtime, GC, kernel scheduling, syscalls)"] += 1
for line in sys.stdin:
    if not line.strip(): flush(); stack = []
    elif line[0] in "\t ": stack.append(line.strip())
flush()
for k, v in counts.most_common(): print(f"| {k} | {100*v/total:.1f} % |")
print(f"| samples | {total} |")
