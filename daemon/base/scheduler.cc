#include "daemon/base/scheduler.h"

#include <cstdio>
#include <cstdlib>

namespace zb::internal {

void DieOffSchedulerThread(const char* file, int line, const char* function) {
  std::fprintf(stderr, "%s:%d: %s: called off the loop thread while the loop runs\n", file, line,
               function);
  std::abort();
}

}  // namespace zb::internal
