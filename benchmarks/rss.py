"""Peak resident memory of the current process, as the benchmarks report it (standard library only)."""


def peak_rss_mb() -> float:
    """Peak RSS of this process's own address space (Linux VmHWM), in MiB. Not getrusage's ru_maxrss: on Linux a
    child process starts from its parent's peak, so a child of a large parent would report the parent's."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
