#include "common/logging.h"

#include <glog/logging.h>

namespace backfill {

void InitLogging(const char* program, int verbosity, bool quiet_warnings) {
  FLAGS_logtostderr = true;
  FLAGS_minloglevel = verbosity > 0    ? google::GLOG_INFO
                      : quiet_warnings ? google::GLOG_ERROR
                                       : google::GLOG_WARNING;
  FLAGS_v = verbosity > 1 ? verbosity - 1 : 0;
  google::InitGoogleLogging(program);
}

}  // namespace backfill
