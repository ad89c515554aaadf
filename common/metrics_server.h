// The Prometheus endpoint (--metrics-listen HOST:PORT): serves a registry's metrics at
// /metrics over HTTP, through prometheus-cpp's exposer.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace prometheus {
class Exposer;
class Registry;
}  // namespace prometheus

namespace backfill {

class MetricsServer {
 public:
  // Serves `registry` at http://<address>/metrics until destroyed. `address` is HOST:PORT
  // (port 0 picks a free one). Fails with a clear message when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& address, const std::shared_ptr<prometheus::Registry>& registry);
  ~MetricsServer();

  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  int port() const { return port_; }

 private:
  MetricsServer(std::unique_ptr<prometheus::Exposer> exposer, int port);
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_;
};

}  // namespace backfill
