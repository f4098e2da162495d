// pipeline: a reader -> decoder -> consumer pipeline (DALI-style) that binds the process to its GPU's
// CPUs with gpu_affinity_set *before* it starts its worker threads, so that every stage runs next to
// the GPU it feeds. Each stage reports the CPUs it may run on (sched_getaffinity of its own thread).
//
//   pipeline [GPU [NPROC]]     GPU defaults to the local rank (LOCAL_RANK, SLURM_LOCALID, ...)
//
// Prints "bound N cpus: LIST", one "stage NAME cpus: LIST" per stage, then "items N"; exits 1 when
// binding failed or a stage ran outside the binding.
#include <gpu_affinity.h>

#include <sched.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <queue>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

template <typename T>
class Channel {
  public:
    void push(T v) {
        std::lock_guard<std::mutex> g(m_);
        q_.push(std::move(v));
        cv_.notify_one();
    }
    void close() {
        std::lock_guard<std::mutex> g(m_);
        closed_ = true;
        cv_.notify_all();
    }
    bool pop(T &out) {
        std::unique_lock<std::mutex> l(m_);
        cv_.wait(l, [this] { return closed_ || !q_.empty(); });
        if (q_.empty()) return false;
        out = std::move(q_.front());
        q_.pop();
        return true;
    }

  private:
    std::mutex m_;
    std::condition_variable cv_;
    std::queue<T> q_;
    bool closed_ = false;
};

std::set<int> own_cpus() {
    cpu_set_t s;
    CPU_ZERO(&s);
    std::set<int> cpus;
    if (sched_getaffinity(0, sizeof s, &s) == 0)
        for (int c = 0; c < CPU_SETSIZE; ++c)
            if (CPU_ISSET(c, &s)) cpus.insert(c);
    return cpus;
}

std::string list(const std::set<int> &cpus) {
    std::ostringstream o;
    const char *sep = "";
    for (int c : cpus) {
        o << sep << c;
        sep = ",";
    }
    return o.str();
}

std::mutex report_lock;
std::vector<std::pair<std::string, std::set<int>>> reports;

void report(const char *stage) {
    std::lock_guard<std::mutex> g(report_lock);
    reports.emplace_back(stage, own_cpus());
}

}  // namespace

int main(int argc, char **argv) {
    int gpu = argc > 1 ? std::atoi(argv[1]) : -1;
    int nproc = argc > 2 ? std::atoi(argv[2]) : 0;

    // Bind first: the stages started below inherit the binding.
    std::vector<int> buf(4096);
    int n = gpu_affinity_set(gpu, nproc, nullptr, buf.data(), static_cast<int>(buf.size()));
    if (n < 0) {
        std::fprintf(stderr, "pipeline: binding failed: %s (%s)\n", gpu_affinity_strerror(n),
                     gpu_affinity_last_error());
        return 1;
    }
    std::set<int> bound(buf.begin(), buf.begin() + (n < static_cast<int>(buf.size()) ? n : buf.size()));
    std::printf("bound %d cpus: %s\n", n, list(bound).c_str());

    Channel<int> raw, decoded;
    long items = 0;
    std::thread reader([&] {
        report("reader");
        for (int i = 0; i < 1000; ++i) raw.push(i);
        raw.close();
    });
    std::vector<std::thread> decoders;
    for (int d = 0; d < 3; ++d)
        decoders.emplace_back([&] {
            report("decoder");
            int v;
            while (raw.pop(v)) decoded.push(v * 2);
        });
    std::thread consumer([&] {
        report("consumer");
        int v;
        while (decoded.pop(v)) ++items;
    });
    reader.join();
    for (auto &t : decoders) t.join();
    decoded.close();
    consumer.join();

    int bad = 0;
    for (auto &r : reports) {
        std::printf("stage %s cpus: %s\n", r.first.c_str(), list(r.second).c_str());
        if (n > 0 && r.second != bound) ++bad;
    }
    std::printf("items %ld\n", items);
    return bad == 0 && items == 1000 ? 0 : 1;
}
