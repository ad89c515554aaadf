// backfill_delay_line: a userspace TCP delay line for integration tests.
//
// Why this exists: multi-host tests want a WAN-like link between simulated hosts (say 100 Mbit/s
// with 20 ms one-way delay), but the kernel of the test machines has no netem qdisc (`tc qdisc
// add ... netem` fails with "Specified qdisc kind is unknown"). tbf and htb work, but they only
// shape the rate. So the delay comes from this program instead: a test points its client at the
// delay line, which forwards to the real server and holds every byte for --delay-ms in each
// direction.
//
// Usage: backfill_delay_line --listen HOST:PORT --to HOST:PORT --delay-ms N [--rate-mbit R]
//
// For each accepted connection it connects to --to and forwards both directions. Each direction
// is a delay line of its own: a reader thread reads chunks of up to 64 KiB, stamps each with its
// arrival time and appends it to a queue bounded at 8 MiB (the reader waits while the queue is
// full, so backpressure reaches the sender through TCP flow control); a writer thread writes each
// chunk out once arrival + delay has passed, paced by a token bucket when --rate-mbit is given
// (1 mbit = 10^6 bit/s, as for tc). A round trip through the line thus takes at least 2 * delay.
//
// EOF on one side is passed on as a half-close: once that direction's queue has drained, the
// other side gets shutdown(SHUT_WR). An error or reset on either side resets both. Once listening
// it prints one line, "delay line listening on HOST:PORT", on stdout. SIGTERM or SIGINT end it
// (exit status 0).

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kChunkBytes = 64 * 1024;           // Largest read, and queue entry.
constexpr size_t kQueueCapBytes = 8 * 1024 * 1024;  // Per direction.
constexpr size_t kBurstBytes = 16 * 1024;           // Token bucket depth (--rate-mbit).

constexpr char kUsage[] =
    "usage: backfill_delay_line --listen HOST:PORT --to HOST:PORT --delay-ms N [--rate-mbit R]\n"
    "Forwards TCP connections from --listen to --to, delaying each direction by N ms and,\n"
    "with --rate-mbit, pacing each direction to R Mbit/s (10^6 bit/s).\n";

struct Options {
  std::string listen_host;
  int listen_port = -1;
  std::string to_host;
  int to_port = -1;
  Clock::duration delay{};
  double rate_bytes_per_second = 0;  // 0: no pacing.
};

// "HOST:PORT" or "[V6ADDR]:PORT" into its parts; false if malformed.
bool SplitHostPort(absl::string_view text, std::string* host, int* port) {
  const size_t colon = text.rfind(':');
  if (colon == absl::string_view::npos) return false;
  absl::string_view host_part = text.substr(0, colon);
  if (absl::ConsumePrefix(&host_part, "[") && !absl::ConsumeSuffix(&host_part, "]")) return false;
  if (host_part.empty()) return false;
  if (!absl::SimpleAtoi(text.substr(colon + 1), port) || *port < 0 || *port > 65535) return false;
  *host = std::string(host_part);
  return true;
}

// Parses the command line; on a mistake prints why and the usage to stderr and returns nullopt.
std::optional<Options> ParseFlags(int argc, char** argv) {
  Options options;
  bool have_delay = false;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    // Both "--flag value" and "--flag=value".
    absl::string_view name = arg;
    absl::string_view value;
    if (const size_t equals = arg.find('='); equals != absl::string_view::npos) {
      name = arg.substr(0, equals);
      value = arg.substr(equals + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      std::fprintf(stderr, "backfill_delay_line: %s needs a value\n%s", argv[i], kUsage);
      return std::nullopt;
    }
    bool ok = false;
    if (name == "--listen") {
      ok = SplitHostPort(value, &options.listen_host, &options.listen_port);
    } else if (name == "--to") {
      ok = SplitHostPort(value, &options.to_host, &options.to_port) && options.to_port > 0;
    } else if (name == "--delay-ms") {
      int64_t ms = 0;
      ok = absl::SimpleAtoi(value, &ms) && ms >= 0;
      options.delay = std::chrono::milliseconds(ms);
      have_delay = true;
    } else if (name == "--rate-mbit") {
      double mbit = 0;
      ok = absl::SimpleAtod(value, &mbit) && mbit > 0;
      options.rate_bytes_per_second = mbit * 1e6 / 8;
    } else {
      std::fprintf(stderr, "backfill_delay_line: unknown flag %s\n%s", std::string(name).c_str(),
                   kUsage);
      return std::nullopt;
    }
    if (!ok) {
      std::fprintf(stderr, "backfill_delay_line: bad value for %s: '%s'\n%s",
                   std::string(name).c_str(), std::string(value).c_str(), kUsage);
      return std::nullopt;
    }
  }
  if (options.listen_port < 0 || options.to_port < 0 || !have_delay) {
    std::fprintf(stderr, "backfill_delay_line: --listen, --to and --delay-ms are required\n%s",
                 kUsage);
    return std::nullopt;
  }
  return options;
}

using AddrInfoPtr = std::unique_ptr<addrinfo, void (*)(addrinfo*)>;

// The TCP addresses of host:port; empty (with the reason on stderr) if it does not resolve.
AddrInfoPtr Resolve(const std::string& host, int port, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  addrinfo* result = nullptr;
  const int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &result);
  if (rc != 0) {
    std::fprintf(stderr, "backfill_delay_line: cannot resolve %s: %s\n", host.c_str(),
                 gai_strerror(rc));
    result = nullptr;
  }
  return AddrInfoPtr(result, freeaddrinfo);
}

void SetNoDelay(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// Closes `fd` with a TCP reset rather than a FIN.
void CloseWithReset(int fd) {
  const linger reset{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
  close(fd);
}

// Paces writes to `rate` bytes/s, allowing bursts of up to kBurstBytes.
class TokenBucket {
 public:
  explicit TokenBucket(double rate) : rate_(rate), tokens_(kBurstBytes), last_(Clock::now()) {}

  // When `bytes` (at most kBurstBytes) may be sent.
  Clock::time_point ReadyAt(size_t bytes) {
    Refill();
    if (tokens_ >= static_cast<double>(bytes)) return last_;
    const std::chrono::duration<double> wait((static_cast<double>(bytes) - tokens_) / rate_);
    return last_ + std::chrono::ceil<Clock::duration>(wait);
  }

  // Records that `bytes` have been sent.
  void Take(size_t bytes) {
    Refill();
    tokens_ -= static_cast<double>(bytes);
  }

 private:
  void Refill() {
    const Clock::time_point now = Clock::now();
    const std::chrono::duration<double> elapsed = now - last_;
    tokens_ = std::min<double>(kBurstBytes, tokens_ + elapsed.count() * rate_);
    last_ = now;
  }

  const double rate_;
  double tokens_;
  Clock::time_point last_;
};

// One forwarded connection: the two sockets and a delay line per direction, shared by its four
// threads (a reader and a writer per direction). Whichever thread finishes last destroys it,
// which closes the sockets.
class Connection {
 public:
  // Takes ownership of both sockets and starts the threads.
  static void Start(int client_fd, int upstream_fd, const Options& options) {
    auto connection = std::make_shared<Connection>(client_fd, upstream_fd, options);
    if (connection->wake_fd_ < 0) {
      std::fprintf(stderr, "backfill_delay_line: eventfd: %s\n", std::strerror(errno));
      connection->Fail();  // Resets both sockets as the connection goes.
      return;
    }
    Direction* up = &connection->client_to_upstream_;
    Direction* down = &connection->upstream_to_client_;
    try {
      std::thread([connection, up] { connection->Read(*up); }).detach();
      std::thread([connection, up] { connection->Write(*up); }).detach();
      std::thread([connection, down] { connection->Read(*down); }).detach();
      std::thread([connection, down] { connection->Write(*down); }).detach();
    } catch (const std::system_error& e) {
      std::fprintf(stderr, "backfill_delay_line: cannot start a thread: %s\n", e.what());
      connection->Fail();  // Threads already started see it and end.
    }
  }

  Connection(int client_fd, int upstream_fd, const Options& options)
      : client_fd_(client_fd),
        upstream_fd_(upstream_fd),
        delay_(options.delay),
        rate_bytes_per_second_(options.rate_bytes_per_second),
        wake_fd_(eventfd(0, EFD_CLOEXEC)),
        client_to_upstream_{client_fd, upstream_fd},
        upstream_to_client_{upstream_fd, client_fd} {}

  ~Connection() {
    close(client_fd_);
    close(upstream_fd_);
    close(wake_fd_);
  }

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

 private:
  struct Chunk {
    Clock::time_point due;  // Arrival + delay.
    std::string data;
  };

  // One direction: bytes read from `from` wait in `queue` before being written to `to`.
  struct Direction {
    Direction(int from_fd, int to_fd) : from(from_fd), to(to_fd) {}

    const int from;
    const int to;
    std::deque<Chunk> queue;  // Guarded by mu_, as are the two below.
    size_t queued_bytes = 0;
    bool eof = false;  // `from` has reached EOF: nothing more will be queued.
  };

  // Reads `d.from` into the queue until EOF (recorded in d.eof) or failure.
  void Read(Direction& d) {
    std::string buffer(kChunkBytes, '\0');
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return failed_ || d.queued_bytes + kChunkBytes <= kQueueCapBytes; });
        if (failed_) return;
      }
      if (!WaitReady(d.from, POLLIN)) return;
      const ssize_t n = recv(d.from, buffer.data(), buffer.size(), MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
        Fail();
        return;
      }
      const Clock::time_point due = Clock::now() + delay_;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (n == 0) {
          d.eof = true;
        } else {
          d.queue.push_back({due, buffer.substr(0, static_cast<size_t>(n))});
          d.queued_bytes += static_cast<size_t>(n);
        }
      }
      cv_.notify_all();
      if (n == 0) return;
    }
  }

  // Writes each queued chunk to `d.to` once it is due; after EOF and an empty queue, half-closes
  // `d.to`.
  void Write(Direction& d) {
    std::optional<TokenBucket> bucket;
    if (rate_bytes_per_second_ > 0) bucket.emplace(rate_bytes_per_second_);
    while (true) {
      Chunk chunk;
      {
        std::unique_lock<std::mutex> lock(mu_);
        while (true) {
          if (failed_) return;
          if (!d.queue.empty()) {
            if (Clock::now() >= d.queue.front().due) break;
            cv_.wait_until(lock, d.queue.front().due);
          } else if (d.eof) {
            shutdown(d.to, SHUT_WR);
            return;
          } else {
            cv_.wait(lock);
          }
        }
        chunk = std::move(d.queue.front());
        d.queue.pop_front();
        d.queued_bytes -= chunk.data.size();
      }
      cv_.notify_all();  // The reader may be waiting for room.
      if (!Send(d.to, chunk.data, bucket)) {
        Fail();
        return;
      }
    }
  }

  // Writes all of `data` to `fd`, paced by `bucket` if any. False on error or failure.
  bool Send(int fd, absl::string_view data, std::optional<TokenBucket>& bucket) {
    while (!data.empty()) {
      size_t size = data.size();
      if (bucket.has_value()) {
        size = std::min(size, kBurstBytes);
        if (!SleepUntil(bucket->ReadyAt(size))) return false;
      }
      if (!WaitReady(fd, POLLOUT)) return false;
      const ssize_t sent = send(fd, data.data(), size, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (sent < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
        return false;
      }
      if (bucket.has_value()) bucket->Take(static_cast<size_t>(sent));
      data.remove_prefix(static_cast<size_t>(sent));
    }
    return true;
  }

  // Waits until `fd` is ready for `events` (or has an error or hangup, which the next recv or
  // send reports). False if the connection failed meanwhile.
  bool WaitReady(int fd, short events) {
    pollfd fds[2] = {{fd, events, 0}, {wake_fd_, POLLIN, 0}};
    while (true) {
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        Fail();
        return false;
      }
      if (fds[1].revents != 0) return false;
      if (fds[0].revents != 0) return true;
    }
  }

  // Sleeps until `deadline`; false (early) if the connection fails meanwhile.
  bool SleepUntil(Clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    return !cv_.wait_until(lock, deadline, [&] { return failed_; });
  }

  // Gives up on the connection: every thread stops and both sockets get reset when closed.
  void Fail() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (failed_) return;
      failed_ = true;
    }
    const linger reset{1, 0};
    setsockopt(client_fd_, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    setsockopt(upstream_fd_, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    eventfd_write(wake_fd_, 1);
    cv_.notify_all();
  }

  const int client_fd_;
  const int upstream_fd_;
  const Clock::duration delay_;
  const double rate_bytes_per_second_;
  const int wake_fd_;  // Readable once failed_: wakes threads waiting in poll().

  std::mutex mu_;
  std::condition_variable cv_;  // Any change to failed_ or a direction's queue or eof.
  bool failed_ = false;         // Guarded by mu_.
  Direction client_to_upstream_;
  Direction upstream_to_client_;
};

// Connects to the upstream for a freshly accepted `client_fd` and starts forwarding; resets the
// client if the upstream cannot be reached.
void HandleClient(int client_fd, const Options& options) {
  int upstream_fd = -1;
  int error = 0;
  AddrInfoPtr addresses = Resolve(options.to_host, options.to_port, /*passive=*/false);
  for (const addrinfo* a = addresses.get(); a != nullptr && upstream_fd < 0; a = a->ai_next) {
    upstream_fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (upstream_fd >= 0 && connect(upstream_fd, a->ai_addr, a->ai_addrlen) != 0) {
      error = errno;
      close(upstream_fd);
      upstream_fd = -1;
    }
  }
  if (upstream_fd < 0) {
    std::fprintf(stderr, "backfill_delay_line: cannot connect to %s:%d: %s\n",
                 options.to_host.c_str(), options.to_port, std::strerror(error));
    CloseWithReset(client_fd);
    return;
  }
  SetNoDelay(client_fd);
  SetNoDelay(upstream_fd);
  Connection::Start(client_fd, upstream_fd, options);
}

// A listening socket on --listen, or -1 (with the reason on stderr).
int Listen(const Options& options) {
  AddrInfoPtr addresses = Resolve(options.listen_host, options.listen_port, /*passive=*/true);
  int error = 0;
  for (const addrinfo* a = addresses.get(); a != nullptr; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      error = errno;
      continue;
    }
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0) return fd;
    error = errno;
    close(fd);
  }
  std::fprintf(stderr, "backfill_delay_line: cannot listen on %s:%d: %s\n",
               options.listen_host.c_str(), options.listen_port, std::strerror(error));
  return -1;
}

// The port `fd` is bound to.
int LocalPort(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return -1;
  if (address.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&address)->sin6_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in*>(&address)->sin_port);
}

}  // namespace

int main(int argc, char** argv) {
  const std::optional<Options> options = ParseFlags(argc, argv);
  if (!options.has_value()) return 2;

  // SIGTERM and SIGINT are taken by one thread, which ends the process; every other thread
  // inherits the blocked mask. Writes to a closed peer return EPIPE instead of raising SIGPIPE.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  std::thread([stop_signals] {
    int signal_number = 0;
    sigwait(&stop_signals, &signal_number);
    std::_Exit(0);
  }).detach();

  const int listen_fd = Listen(*options);
  if (listen_fd < 0) return 1;
  const std::string host = options->listen_host.find(':') == std::string::npos
                               ? options->listen_host
                               : absl::StrCat("[", options->listen_host, "]");
  std::printf("delay line listening on %s:%d\n", host.c_str(), LocalPort(listen_fd));
  std::fflush(stdout);

  while (true) {
    const int client_fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (client_fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        std::fprintf(stderr, "backfill_delay_line: accept: %s\n", std::strerror(errno));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      std::fprintf(stderr, "backfill_delay_line: accept: %s\n", std::strerror(errno));
      std::_Exit(1);  // Not return: detached threads may still be using the connections.
    }
    // Connecting may block (an unreachable upstream), so it happens off the accept loop. The
    // thread gets its own copy of the options.
    try {
      std::thread([client_fd, copy = *options] { HandleClient(client_fd, copy); }).detach();
    } catch (const std::system_error& e) {
      std::fprintf(stderr, "backfill_delay_line: cannot start a thread: %s\n", e.what());
      CloseWithReset(client_fd);
    }
  }
}
