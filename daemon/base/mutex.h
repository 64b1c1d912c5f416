// Mutex, MutexLock and CondVar: the locks every component uses, annotated for clang's thread
// safety analysis (-Wthread-safety, https://clang.llvm.org/docs/ThreadSafetyAnalysis.html).
//
// libstdc++'s std::mutex carries no annotations, so the analysis cannot see it being held;
// these thin wrappers can. A member a mutex protects is declared ZB_GUARDED_BY(mu_), a private
// method that expects the lock held ZB_REQUIRES(mu_); clang then refuses, at compile time, a
// read or write of that member without the lock. GCC ignores the annotations; CI builds the
// daemon with clang (./dev lint) so that they are checked on every change.
//
// Threads: as std::mutex and std::condition_variable.
#ifndef ZB_DAEMON_BASE_MUTEX_H_
#define ZB_DAEMON_BASE_MUTEX_H_

#include <chrono>
#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define ZB_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define ZB_THREAD_ANNOTATION(x)
#endif

#define ZB_CAPABILITY(name) ZB_THREAD_ANNOTATION(capability(name))
#define ZB_SCOPED_CAPABILITY ZB_THREAD_ANNOTATION(scoped_lockable)
#define ZB_GUARDED_BY(mu) ZB_THREAD_ANNOTATION(guarded_by(mu))
#define ZB_PT_GUARDED_BY(mu) ZB_THREAD_ANNOTATION(pt_guarded_by(mu))
#define ZB_REQUIRES(...) ZB_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define ZB_EXCLUDES(...) ZB_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ZB_ACQUIRE(...) ZB_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define ZB_RELEASE(...) ZB_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define ZB_ASSERT_CAPABILITY(x) ZB_THREAD_ANNOTATION(assert_capability(x))
#define ZB_NO_THREAD_SAFETY_ANALYSIS ZB_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace zb {

class ZB_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ZB_ACQUIRE() { mu_.lock(); }
  void Unlock() ZB_RELEASE() { mu_.unlock(); }

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds `mu` for the scope, as std::lock_guard does.
class ZB_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ZB_ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ZB_RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// A condition variable. Each wait names the Mutex it holds (the analysis checks it is held);
// every wait on one CondVar uses the same Mutex. Waits take no predicate (the analysis cannot
// see a lambda run under the lock): callers loop, `while (!ready_) cv_.Wait(&mu_);`, which
// also absorbs spurious wakeups.
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  // Releases `mu` while it waits, and holds it again when it returns.
  void Wait(Mutex* mu) ZB_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();  // still held: the caller's MutexLock releases it
  }
  // As Wait(), until `deadline` at the latest; false when the deadline passed.
  template <typename ClockType, typename Duration>
  bool WaitUntil(Mutex* mu, std::chrono::time_point<ClockType, Duration> deadline) ZB_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    std::cv_status woke = cv_.wait_until(lock, deadline);
    lock.release();
    return woke == std::cv_status::no_timeout;
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace zb

#endif  // ZB_DAEMON_BASE_MUTEX_H_
