// Simulated hosts for multi-host tests: network namespaces joined by a bridge.
//
// VirtualNetwork::Create() makes one namespace per host plus a "switch" namespace holding a
// bridge; each host gets a veth link (eth0 on its side) into the bridge and an address in
// 10.231.0.0/24. Nothing is attached to the caller's own namespace, so the hosts reach each
// other and nothing else. Needs root and iproute2; where either is missing, Create() returns
// an error saying so and the test should skip with one loud line.

#ifndef BACKFILL_TESTS_HARNESS_NETNS_H_
#define BACKFILL_TESTS_HARNESS_NETNS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace backfill::testing {

class VirtualNetwork {
 public:
  static constexpr char kSubnet[] = "10.231.0.0/24";

  // Creates the switch and one namespace per name in `hosts` (short names: [a-z0-9]).
  static absl::StatusOr<std::unique_ptr<VirtualNetwork>> Create(
      const std::vector<std::string>& hosts);
  // Deletes every namespace it made. Processes still inside keep theirs alive: stop them first.
  ~VirtualNetwork();

  VirtualNetwork(const VirtualNetwork&) = delete;
  VirtualNetwork& operator=(const VirtualNetwork&) = delete;

  // The namespace name of `host`, for `ip netns exec`.
  std::string Namespace(const std::string& host) const;
  // The IPv4 address of `host` (no prefix length).
  std::string Address(const std::string& host) const;
  // argv prefix that runs a command on `host`: {"ip", "netns", "exec", <namespace>}.
  std::vector<std::string> On(const std::string& host) const;

  // Pulls `host`'s cable out of the switch (its packets go nowhere), and plugs it back in.
  absl::Status CutLink(const std::string& host);
  absl::Status RestoreLink(const std::string& host);
  // Limits what `host` sends to `rate` (tc tbf syntax, e.g. "4mbit").
  absl::Status LimitEgress(const std::string& host, const std::string& rate);

 private:
  explicit VirtualNetwork(std::string prefix) : prefix_(std::move(prefix)) {}
  size_t IndexOf(const std::string& host) const;
  absl::Status Ip(const std::vector<std::string>& args);

  std::string prefix_;
  std::vector<std::string> hosts_;
  std::vector<std::string> created_;  // namespaces to delete
};

}  // namespace backfill::testing

#endif  // BACKFILL_TESTS_HARNESS_NETNS_H_
