#include "common/signals.h"

#include <pthread.h>
#include <signal.h>

#include <thread>

namespace backfill {

void WatchTerminationSignals(std::function<void()> on_graceful,
                             std::function<void()> on_immediate) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set, on_graceful = std::move(on_graceful),
               on_immediate = std::move(on_immediate)]() {
    int received = 0;
    for (;;) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      ++received;
      if (received == 1) {
        on_graceful();
      } else if (sig == SIGINT) {
        on_immediate();
      }
    }
  }).detach();
}

}  // namespace backfill
