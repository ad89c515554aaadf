#include "tests/harness/netns.h"

#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/harness/process.h"

namespace backfill::testing {
namespace {

absl::Status Run(const std::vector<std::string>& argv) {
  ProcessResult result = RunProcess(argv, {}, 30);
  if (result.exit_code == 0) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("`", absl::StrJoin(argv, " "), "` exited with ",
                                          result.exit_code, ": ", result.err));
}

// The switch-side name of host `index`'s link.
std::string Port(size_t index) { return absl::StrCat("port", index); }

}  // namespace

absl::StatusOr<std::unique_ptr<VirtualNetwork>> VirtualNetwork::Create(
    const std::vector<std::string>& hosts) {
  if (geteuid() != 0) return absl::FailedPreconditionError("not running as root");
  if (hosts.empty() || hosts.size() > 200) {
    return absl::InvalidArgumentError("between 1 and 200 hosts");
  }
  std::unique_ptr<VirtualNetwork> net(new VirtualNetwork(absl::StrCat("bftest", getpid())));
  const std::string sw = net->prefix_ + "-switch";
  if (absl::Status s = net->Ip({"netns", "add", sw}); !s.ok()) return s;
  net->created_.push_back(sw);
  if (absl::Status s = net->Ip({"-n", sw, "link", "add", "br0", "type", "bridge"}); !s.ok()) {
    return s;
  }
  if (absl::Status s = net->Ip({"-n", sw, "link", "set", "br0", "up"}); !s.ok()) return s;
  for (const std::string& host : hosts) {
    const size_t index = net->hosts_.size();
    net->hosts_.push_back(host);
    const std::string ns = net->Namespace(host);
    const std::string address = absl::StrCat(net->Address(host), "/24");
    for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
             {"netns", "add", ns},
             {"-n", sw, "link", "add", Port(index), "type", "veth", "peer", "name", "eth0", "netns",
              ns},
             {"-n", sw, "link", "set", Port(index), "master", "br0", "up"},
             {"-n", ns, "link", "set", "lo", "up"},
             {"-n", ns, "addr", "add", address, "dev", "eth0"},
             {"-n", ns, "link", "set", "eth0", "up"},
         }) {
      if (absl::Status s = net->Ip(args); !s.ok()) return s;
      if (args[1] == "add" && args[0] == "netns") net->created_.push_back(ns);
    }
  }
  return net;
}

VirtualNetwork::~VirtualNetwork() {
  for (auto it = created_.rbegin(); it != created_.rend(); ++it) {
    (void)Run({"ip", "netns", "del", *it});
  }
}

size_t VirtualNetwork::IndexOf(const std::string& host) const {
  for (size_t i = 0; i < hosts_.size(); ++i) {
    if (hosts_[i] == host) return i;
  }
  std::abort();  // a test bug: the host was never created
}

std::string VirtualNetwork::Namespace(const std::string& host) const {
  return absl::StrCat(prefix_, "-", host);
}

std::string VirtualNetwork::Address(const std::string& host) const {
  return absl::StrCat("10.231.0.", IndexOf(host) + 10);
}

std::vector<std::string> VirtualNetwork::On(const std::string& host) const {
  return {"ip", "netns", "exec", Namespace(host)};
}

absl::Status VirtualNetwork::CutLink(const std::string& host) {
  return Ip({"-n", prefix_ + "-switch", "link", "set", Port(IndexOf(host)), "down"});
}

absl::Status VirtualNetwork::RestoreLink(const std::string& host) {
  return Ip({"-n", prefix_ + "-switch", "link", "set", Port(IndexOf(host)), "up"});
}

absl::Status VirtualNetwork::LimitEgress(const std::string& host, const std::string& rate) {
  return Run({"ip", "netns", "exec", Namespace(host), "tc", "qdisc", "add", "dev", "eth0", "root",
              "tbf", "rate", rate, "burst", "32kbit", "latency", "500ms"});
}

absl::Status VirtualNetwork::Ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv);
}

}  // namespace backfill::testing
