// The background thread of a control-plane service (the verdict server,
// the Redis subscriber): it waits in poll() on its own descriptors plus
// an eventfd, and stop() wakes it through that eventfd and joins it.
#pragma once

#include <weir/core/result.hpp>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <thread>
#include <utility>

namespace weir::dataplane {

class ServiceThread {
public:
    ServiceThread() = default;
    ~ServiceThread()
    {
        stop();
        close_wake();
    }
    ServiceThread(const ServiceThread&) = delete;
    ServiceThread& operator=(const ServiceThread&) = delete;

    // Makes the eventfd stop() writes to; call before start().
    Result<bool> open_wake()
    {
        wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (wake_fd_ < 0)
            return from_errno(errno, "eventfd");
        return true;
    }
    void close_wake()
    {
        if (wake_fd_ >= 0)
            ::close(wake_fd_);
        wake_fd_ = -1;
    }
    // Readable once stop() was called: poll it with the service's own fds.
    [[nodiscard]] int wake_fd() const { return wake_fd_; }
    [[nodiscard]] bool running() const { return running_.load(std::memory_order_relaxed); }

    template <class Body>
    void start(Body&& body)
    {
        running_ = true;
        thread_ = std::thread(std::forward<Body>(body));
    }
    // Wakes and joins the thread; false when it was not running.
    bool stop()
    {
        if (!running_.exchange(false))
            return false;
        const uint64_t one = 1;
        [[maybe_unused]] ssize_t w = ::write(wake_fd_, &one, sizeof(one));
        if (thread_.joinable())
            thread_.join();
        return true;
    }
    // Sleeps up to ms, returning early on stop(); false once stopped.
    bool sleep_ms(uint32_t ms) const
    {
        pollfd p{wake_fd_, POLLIN, 0};
        ::poll(&p, 1, static_cast<int>(ms));
        return running();
    }

private:
    int wake_fd_ = -1;
    std::atomic<bool> running_{false};
    std::thread thread_;
};

}  // namespace weir::dataplane
