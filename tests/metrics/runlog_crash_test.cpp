// The run log under a writer killed at random moments (kill -9) and under readers of a live writer. The
// writers are forked processes that report each completed flush() through a pipe.
#include <poll.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <iostream>
#include <random>

#include "metrics/runlog.h"
#include "metrics/runlog_reader.h"
#include "tests/metrics/runlog_fixture.h"

namespace sinklab::test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// A forked process running body(ack_fd); the parent collects the int64 acknowledgements it writes.
class Child {
public:
    explicit Child(const std::function<void(int)>& body) {
        int fds[2];
        if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
        pid_ = fork();
        if (pid_ < 0) throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            close(fds[0]);
            int rc = 0;
            try {
                body(fds[1]);
            } catch (const std::exception& e) {
                std::fprintf(stderr, "writer process: %s\n", e.what());
                rc = 3;
            }
            _exit(rc);  // no gtest, no static destructors in the child
        }
        close(fds[1]);
        fd_ = fds[0];
    }
    ~Child() {
        if (pid_ > 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
        close(fd_);
    }

    // Reads acknowledgements for `ms` milliseconds or until the child closes its end (with `first`: or until one
    // arrives); returns the last one.
    int64_t read_acks(int ms, int64_t last, bool first = false) {
        const auto deadline = Clock::now() + std::chrono::milliseconds(ms);
        const int64_t before = last;
        while (!eof_ && !(first && last != before)) {
            const int left =
                int(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
            if (left <= 0) break;
            pollfd p{fd_, POLLIN, 0};
            if (poll(&p, 1, left) <= 0) break;
            last = drain(last);
        }
        return last;
    }

    // SIGKILL now, then collect what the child acknowledged before it died.
    int64_t kill9(int64_t last) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        pid_ = -1;
        while (!eof_) last = drain(last);
        return last;
    }

    bool done() const { return eof_; }

    int wait_exit() {
        int status = 0;
        waitpid(pid_, &status, 0);
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }

private:
    int64_t drain(int64_t last) {
        char buffer[4096];
        const ssize_t got = read(fd_, buffer, sizeof buffer);
        if (got <= 0) {
            eof_ = true;
            return last;
        }
        partial_.append(buffer, size_t(got));
        size_t used = 0;
        for (; used + 8 <= partial_.size(); used += 8) std::memcpy(&last, partial_.data() + used, 8);
        partial_.erase(0, used);
        return last;
    }

    pid_t pid_ = -1;
    int fd_ = -1;
    bool eof_ = false;
    std::string partial_;
};

void ack(int fd, int64_t step) {
    if (write(fd, &step, sizeof step) != sizeof step) _exit(4);
}

const std::vector<std::string> kWritten{"scalars", "shapes", "big"};

TEST(RunLogCrash, KillNineAtRandomMomentsLosesNoFlushedRow) {
    TempDir dir;
    const std::string path = dir.file("metrics.h5");
    const unsigned seed = std::random_device{}();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const bool python = h5py_available();

    // Steps through `complete` are in every group of the file. A kill inside flush() may leave some groups with
    // later rows too; a trainer's checkpoint comes after a completed flush, so resumes go back to `complete`.
    int64_t complete = -1;
    bool exists = false;
    int kills_before_ack = 0, kills_after_ack = 0;
    for (int round = 0; round < 10; round++) {
        const int64_t through =
            exists ? std::uniform_int_distribution<int64_t>(std::max<int64_t>(-1, complete - 20), complete)(rng) : -1;
        // A third of the kills land within the first milliseconds: inside create() or resume() (rounds 0, 3, 6, 9).
        // The others come up to 35 ms after the first acknowledged flush, at random moments of the later flushes:
        // timed from the start, on a loaded machine (ctest -j) every kill once landed before create() ended, and no
        // round left a file.
        const bool early = round % 3 == 0;
        const int delay_ms = early ? std::uniform_int_distribution<int>(0, 4)(rng)
                                   : std::uniform_int_distribution<int>(0, 35)(rng);
        Child child([&](int fd) {
            auto log =
                exists ? RunLog::resume(path, test_groups(), through) : RunLog::create(path, test_groups(), {}, {});
            for (int64_t s = through + 1;; s++) {
                append_step(*log, s);
                if (s % 2 == 1) {
                    log->flush();
                    ack(fd, s);
                }
            }
        });
        const int64_t first = early ? -1 : child.read_acks(60000, -1, true);
        const int64_t acked = child.kill9(child.read_acks(delay_ms, first));
        (acked < 0 ? kills_before_ack : kills_after_ack)++;
        SCOPED_TRACE(fmt::format("round {}: resumed through {}, killed {} ms after {}, last acknowledged step {}",
                                 round, through, delay_ms, early ? "its start" : "its first flush", acked));
        if (!fs::exists(path)) {  // killed inside the first create(): nothing was acknowledged
            ASSERT_FALSE(exists);
            ASSERT_EQ(acked, -1);
            continue;
        }
        // Killed before its first flush, the writer left the file as it was or truncated through `through`.
        complete = acked >= 0 ? acked : through;
        RunLogReader reader(path);
        const int64_t got = check_group(reader, "scalars");  // scalars are written first in a flush
        ASSERT_GE(got, complete);
        for (const std::string& g : kWritten) {
            const int64_t group_last = check_group(reader, g);
            EXPECT_GE(group_last, last_logged(g, complete)) << g;
            EXPECT_LE(group_last, last_logged(g, got)) << g;
        }
        if (python) {
            const PythonResult py = h5py_dump(path, true);
            ASSERT_EQ(py.rc, 0) << py.out;
            const nlohmann::json dump = py.json();
            for (const std::string& g : kWritten) EXPECT_EQ(check_dump_group(dump, g), check_group(reader, g)) << g;
            if (round < 2) {  // what runlog.h tells researchers: a killed run needs swmr=True
                const PythonResult plain = h5py_dump(path, false);
                EXPECT_NE(plain.rc, 0);
                EXPECT_NE(plain.out.find("already open for write"), std::string::npos) << plain.out;
            }
        }
        exists = true;
    }
    std::cout << fmt::format("[ info ] {} kills before the first acknowledged flush, {} after; last complete step {}\n",
                             kills_before_ack, kills_after_ack, complete);

    // A resume in this process finishes the run; closed, the file is plain HDF5 again.
    ASSERT_TRUE(exists);
    auto log = RunLog::resume(path, test_groups(), complete);
    for (int64_t s = complete + 1; s <= complete + 10; s++) append_step(*log, s);
    log->close();
    RunLogReader reader(path);
    for (const std::string& g : kWritten) EXPECT_EQ(check_group(reader, g), last_logged(g, complete + 10)) << g;
    EXPECT_FALSE(fs::exists(path + ".resume"));
    if (!python) GTEST_SKIP() << "h5py is not installed for /usr/bin/python3; our reader's checks passed";
    const PythonResult py = h5py_dump(path, false);
    ASSERT_EQ(py.rc, 0) << py.out;
    const nlohmann::json dump = py.json();
    for (const std::string& g : kWritten) EXPECT_EQ(check_dump_group(dump, g), last_logged(g, complete + 10)) << g;
}

TEST(RunLogCrash, ReadersFollowALiveWriter) {
    TempDir dir;
    const std::string path = dir.file("metrics.h5");
    const int64_t last = 299;
    Child child([&](int fd) {
        auto log = RunLog::create(path, test_groups(), {{"backend", "cpu"}}, {});
        for (int64_t s = 0; s <= last; s++) {
            append_step(*log, s);
            if (s % 2 == 1) {
                log->flush();
                ack(fd, s);
                usleep(5000);
            }
        }
        log->close();
    });
    int64_t acked = -1;
    for (int tries = 0; acked < 1 && tries < 500; tries++) acked = child.read_acks(10, acked);
    ASSERT_GE(acked, 1) << "the writer process acknowledged no flush";

    RunLogReader early(path);  // opened once, read again and again while the run goes on
    EXPECT_EQ(early.str_attr("backend"), "cpu");
    int64_t early_last = check_group(early, "scalars");
    EXPECT_GE(early_last, acked);
    const int64_t first_seen = early_last;
    int opens = 0;
    while (!child.done()) {
        const int64_t acked_before = acked;
        RunLogReader fresh(path);
        EXPECT_GE(check_group(fresh, "scalars"), acked_before);
        EXPECT_EQ(check_group(early, "scalars"), early_last) << "a reader is a snapshot until refresh()";
        early.refresh();
        early_last = check_group(early, "scalars");
        EXPECT_GE(early_last, acked_before);
        for (const char* g : {"shapes", "big"}) EXPECT_GE(check_group(fresh, g), last_logged(g, acked_before));
        if (opens == 10 && h5py_available()) {
            const PythonResult py = h5py_dump(path, true);
            ASSERT_EQ(py.rc, 0) << py.out;
            EXPECT_GE(check_dump_group(py.json(), "scalars"), acked_before);
        }
        opens++;
        acked = child.read_acks(10, acked);
    }
    EXPECT_EQ(child.wait_exit(), 0);
    EXPECT_GT(opens, 5) << "the writer finished before the readers could follow it";
    EXPECT_GT(early_last, first_seen) << "a reader opened early saw no new rows";
    early.refresh();
    EXPECT_EQ(check_group(early, "scalars"), last);
    for (const std::string& g : kWritten) EXPECT_EQ(check_group(RunLogReader(path), g), last_logged(g, last)) << g;
    std::cout << fmt::format("[ info ] {} reader opens while the writer ran\n", opens);

    if (!h5py_available()) GTEST_SKIP() << "h5py is not installed for /usr/bin/python3; our reader's checks passed";
    const PythonResult py = h5py_dump(path, false);
    ASSERT_EQ(py.rc, 0) << py.out;
    const nlohmann::json dump = py.json();
    for (const std::string& g : kWritten) EXPECT_EQ(check_dump_group(dump, g), last_logged(g, last)) << g;
}

// Damaged bytes end every read and every resume of a run log with an error, never a hang: HDF5 retries a metadata
// block whose checksum fails, each time sleeping twice as long as before, and its default number of attempts for
// SWMR files would not end in our lifetime. A resume that accepts a damaged file must also be able to append to
// it, so that the damage never costs the metrics of steps trained after the resume. Each 8 bytes of the file's
// first 8 KiB (where its metadata lies) are damaged in turn; reads, whose failed checksums take a second of retries
// each, try every 1024th.
TEST(RunLogCrash, DamagedBytesEndReadsAndResumesWithAnError) {
    TempDir dir;
    const std::string good = dir.file("good.h5");
    {
        auto log = RunLog::create(good, test_groups(), {}, {});
        for (int64_t s = 0; s <= 30; s++) append_step(*log, s);
        log->close();
    }
    const uintmax_t end = std::min<uintmax_t>(fs::file_size(good), 8192);

    Child child([&](int fd) {
        int64_t checksum_failures = 0;
        for (uintmax_t at = 0; at + 8 <= end; at += 8) {
            const std::string damaged = dir.file("damaged.h5");
            fs::copy_file(good, damaged, fs::copy_options::overwrite_existing);
            {
                std::fstream file(damaged, std::ios::in | std::ios::out | std::ios::binary);
                file.seekp(std::streamoff(at));
                file.write("\xff\xff\xff\xff\xff\xff\xff\xff", 8);
            }
            if (at % 1024 == 0) try {
                    RunLogReader reader(damaged);
                    for (const std::string& g : reader.groups())
                        for (const std::string& c : reader.columns(g)) reader.read(g, c);
                } catch (const Error& e) {
                    if (std::string(e.what()).find("checksum") != std::string::npos) checksum_failures++;
                }
            std::unique_ptr<RunLog> log;
            try {
                log = RunLog::resume(damaged, test_groups(), 30);  // keeps every row: no truncation reads them
            } catch (const Error&) {
                continue;
            }
            try {
                for (int64_t s = 31; s <= 40; s++) append_step(*log, s);
                log->close();
            } catch (const Error& e) {
                std::fprintf(stderr, "damaged at byte %ju: resumed, then %s\n", at, e.what());
                _exit(5);
            }
        }
        ack(fd, checksum_failures);
    });
    const int64_t checksum_failures = child.read_acks(120000, -1);
    ASSERT_TRUE(child.done()) << "reading or resuming a damaged run log hung";
    EXPECT_EQ(child.wait_exit(), 0) << "a resume accepted a damaged run log that it could not write (stderr above)";
    EXPECT_GT(checksum_failures, 0) << "no damaged byte hit a checksummed block: the test did not reach the retries";
}

}  // namespace
}  // namespace sinklab::test
