// A one-line progress display for a terminal, redrawn in place with '\r'; silent when stderr is not a TTY
// (logs and CI output stay clean).
#pragma once
#include <cstdint>
#include <string>

namespace sinklab {

class Progress {
public:
    explicit Progress(int64_t total, std::string label = "");
    ~Progress();
    // Redraws the line at `done` of `total`, with `detail` after the bar.
    void update(int64_t done, const std::string& detail);
    // Erases the line so that a log line can be printed; the next update() draws it again.
    void clear();
    void finish();

private:
    int64_t total_;
    std::string label_;
    bool tty_;
    bool drawn_ = false;
};

// "1:02:03" / "4:05" for a duration in seconds.
std::string format_duration(double seconds);

}  // namespace sinklab
