#pragma once
// SIGINT and SIGTERM as a request to stop (fit: finish the step, save, return), private to the
// library. The handler only records the signal (async-signal-safe) and gives both signals back
// their default action, so that a second one ends the process at once.
namespace mcnn::detail {

/// While alive, and when `enabled`: the first SIGINT or SIGTERM is recorded instead of ending the
/// process; afterwards both have their default action again (a second signal ends the process).
/// A signal the process ignores (SIG_IGN, as a shell without job control sets SIGINT for its
/// background commands) stays ignored. The destructor restores the handlers found at construction,
/// so a program's own handlers are replaced only while fit runs. One instance at a time.
class StopSignals {
public:
    explicit StopSignals(bool enabled);
    ~StopSignals();
    StopSignals(const StopSignals&) = delete;
    StopSignals& operator=(const StopSignals&) = delete;

    /// The signal received so far (SIGINT or SIGTERM), or 0.
    int received() const;

private:
    bool enabled_;
};

/// "SIGINT", "SIGTERM", else "a signal".
const char* signal_name(int signal);

}  // namespace mcnn::detail
