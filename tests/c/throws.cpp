/* A C++ host that unwinds through its own frames while libgpuaff (with its own static unwinder) is
   preloaded: threads created with pthread_create and std::thread throw through several frames with
   destructors and catch; a thread leaves through pthread_exit (a forced unwind that runs C++
   destructors and passes the hook's wrapper frame); main throws and catches. Prints
   "pthread caught=1 destroyed=6 cpus=LIST", "std::thread caught=1 destroyed=6 cpus=LIST",
   "exit value=42 forced=1 destroyed=1 cpus=LIST", "main caught=1 destroyed=6", then "done". */
#include "common.h"
#include <atomic>
#include <cxxabi.h>
#include <stdexcept>
#include <thread>

static std::atomic<int> destroyed{0};

struct Counted {
    ~Counted() { destroyed++; }
};

__attribute__((noinline)) static void deep(int n) {
    Counted c;
    if (n == 0) throw std::runtime_error("thrown");
    deep(n - 1);
    asm volatile("" ::: "memory"); /* not a tail call: every level keeps its frame */
}

/* 1 when deep(5)'s exception reached this catch after its six destructors ran. */
static int throw_and_catch() {
    destroyed = 0;
    try {
        deep(5);
    } catch (const std::runtime_error &) {
        return destroyed == 6;
    }
    return 0;
}

struct Result {
    int caught;
    int destroyed;
    char cpus[512];
};

static void *catches(void *p) {
    Result *r = static_cast<Result *>(p);
    cpus_of(tid_self(), r->cpus, sizeof r->cpus);
    r->caught = throw_and_catch();
    r->destroyed = destroyed;
    return nullptr;
}

static int forced = 0;

static void *exits(void *p) {
    Result *r = static_cast<Result *>(p);
    cpus_of(tid_self(), r->cpus, sizeof r->cpus);
    destroyed = 0;
    try {
        Counted c;
        pthread_exit(reinterpret_cast<void *>(42));
    } catch (abi::__forced_unwind &) {
        forced = 1;
        throw; /* a forced unwind must go on */
    }
    return nullptr;
}

int main() {
    alarm(20); /* a hang is a failure, not a stuck test */
    Result r{};
    pthread_t t;
    if (pthread_create(&t, nullptr, catches, &r) != 0) return 3;
    pthread_join(t, nullptr);
    printf("pthread caught=%d destroyed=%d cpus=%s\n", r.caught, r.destroyed, r.cpus);

    Result s{};
    std::thread([&s] { catches(&s); }).join();
    printf("std::thread caught=%d destroyed=%d cpus=%s\n", s.caught, s.destroyed, s.cpus);

    Result x{};
    void *ret = nullptr;
    if (pthread_create(&t, nullptr, exits, &x) != 0) return 3;
    pthread_join(t, &ret);
    printf("exit value=%ld forced=%d destroyed=%d cpus=%s\n", (long)ret, forced, destroyed.load(), x.cpus);

    int caught = throw_and_catch();
    printf("main caught=%d destroyed=%d\n", caught, destroyed.load());
    printf("done\n");
    return 0;
}
