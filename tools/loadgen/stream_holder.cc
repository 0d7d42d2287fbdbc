#include "tools/loadgen/stream_holder.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace pumptwin::loadgen {

using pumptwin::v1::GatewayMessage;
using pumptwin::v1::ServerMessage;

namespace {

std::string CodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

std::string FormatCodes(const std::map<std::string, int>& codes) {
  return absl::StrJoin(codes, ",", absl::PairFormatter(":"));
}

}  // namespace

std::string HoldGatewayId(const HoldOptions& o, int stream) {
  return absl::StrCat(o.gateway_prefix, "-", stream);
}

std::string HoldPumpId(const HoldOptions& o, int stream) {
  return absl::StrCat(o.pump_prefix, "-", stream);
}

// One held Connect stream. The reactor keeps a hold (AddHold) from StartCall until
// Close(), so OnDone cannot run while the pacer thread may still start a write; only the
// main thread releases it, once, in Close(). At most one write is outstanding (write_busy_)
// and at most one frame awaits its Ack (awaiting_ack_).
class StreamHolder::Stream final : public grpc::ClientBidiReactor<GatewayMessage, ServerMessage> {
 public:
  Stream(StreamHolder* holder, std::string gateway_id, std::string pump_id, bool hello_lists_pump)
      : h_(holder),
        gateway_id_(std::move(gateway_id)),
        pump_id_(std::move(pump_id)),
        hello_lists_pump_(hello_lists_pump) {}

  // Main thread: Hello, first read, StartCall.
  void Begin(pumptwin::v1::DeviceGateway::Stub* stub, absl::Time deadline) {
    ctx_.set_deadline(absl::ToChronoTime(deadline));
    stub->async()->Connect(&ctx_, this);
    AddHold();
    pumptwin::v1::Hello* hello = out_.mutable_hello();
    hello->set_gateway_id(gateway_id_);
    hello->set_software_version("pumptwin_streamhold");
    if (hello_lists_pump_) hello->add_pump_ids(pump_id_);
    started_ns_ = absl::ToUnixNanos(absl::Now());
    write_busy_.store(true);
    StartWrite(&out_);
    StartRead(&in_);
    StartCall();
  }

  // Pacer thread: sends the next one-sample frame if the stream is idle.
  bool TrySendFrame() {
    if (!welcomed_.load(std::memory_order_acquire) || read_ended_.load() ||
        write_busy_.load(std::memory_order_acquire) ||
        awaiting_ack_.load(std::memory_order_acquire)) {
      return false;
    }
    const int64_t now_ms = absl::ToUnixMillis(absl::Now());
    last_device_ms_ = std::max(now_ms, last_device_ms_ + 1);
    out_.Clear();
    pumptwin::v1::TelemetryFrame* f = out_.mutable_frame();
    f->set_frame_id(++frame_id_);
    pumptwin::v1::TelemetrySample* s = f->add_samples();
    *s = SampleTemplate(pump_id_);
    s->set_seq(next_seq_++);
    s->set_device_time_ms(last_device_ms_);
    {
      absl::MutexLock l(&h_->mu_);
      ++h_->counts_.frames_in_flight;
      ++h_->counts_.writes_in_flight;
    }
    sent_ns_.store(absl::ToUnixNanos(absl::Now()), std::memory_order_release);
    awaiting_ack_.store(true, std::memory_order_release);
    write_busy_.store(true, std::memory_order_release);
    StartWrite(&out_);
    return true;
  }

  // Main thread, after the pacer stopped: connection-phase leftovers are cancelled.
  void Cancel() { ctx_.TryCancel(); }

  // Main thread, once, after the pacer stopped: half-close (or cancel a stream that cannot
  // take it) and release the hold.
  void Close() {
    if (!read_ended_.load() && welcomed_.load() && !write_busy_.load(std::memory_order_acquire)) {
      StartWritesDone();
    } else if (!read_ended_.load()) {
      ctx_.TryCancel();
    }
    RemoveHold();
  }

  void OnWriteDone(bool ok) override {
    const bool was_frame = out_.has_frame();
    write_busy_.store(false, std::memory_order_release);
    (void)ok;  // a failed write is followed by a failed read, which records the end
    if (was_frame) {
      absl::MutexLock l(&h_->mu_);
      --h_->counts_.writes_in_flight;
    }
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      read_ended_.store(true);
      const bool welcomed = welcomed_.load();
      absl::MutexLock l(&h_->mu_);
      if (!welcomed) {
        ++h_->counts_.connect_failed;
      } else if (!h_->closing_.load()) {
        ended_early_ = true;
        ++h_->counts_.dropped;
      }
      if (awaiting_ack_.exchange(false)) --h_->counts_.frames_in_flight;
      return;
    }
    const absl::Time now = absl::Now();
    if (in_.has_welcome()) {
      for (const pumptwin::v1::PumpResumePoint& p : in_.welcome().resume_points()) {
        if (p.pump_id() == pump_id_) next_seq_ = p.highest_durable_seq() + 1;
      }
      h_->handshake_.Add(now - absl::FromUnixNanos(started_ns_));
      welcomed_.store(true, std::memory_order_release);
      absl::MutexLock l(&h_->mu_);
      ++h_->counts_.established;
      h_->last_welcome_ns_ = std::max(h_->last_welcome_ns_, absl::ToUnixNanos(now));
    } else if (in_.has_ack()) {
      if (awaiting_ack_.load(std::memory_order_acquire)) {
        h_->ack_.Add(now - absl::FromUnixNanos(sent_ns_.load(std::memory_order_acquire)));
        acked_ = true;
        h_->acks_.fetch_add(1);
        awaiting_ack_.store(false, std::memory_order_release);
        absl::MutexLock l(&h_->mu_);
        --h_->counts_.frames_in_flight;
      }
    } else if (in_.has_nack()) {
      h_->nacks_.fetch_add(1);
    } else if (in_.has_flow_control()) {
      h_->flow_controls_.fetch_add(1);
    }
    StartRead(&in_);
  }

  void OnDone(const grpc::Status& s) override {
    final_code_ = s.error_code();
    absl::MutexLock l(&h_->mu_);
    done_ = true;
    ++h_->counts_.done;
  }

  bool welcomed() const { return welcomed_.load(); }
  bool alive() const { return welcomed_.load() && !read_ended_.load(); }
  // The rest is read by Summarize under mu_, and only once done() (set under mu_).
  bool done() const { return done_; }
  bool ended_early() const { return ended_early_; }
  bool acked() const { return acked_; }
  grpc::StatusCode final_code() const { return final_code_; }

 private:
  StreamHolder* const h_;
  const std::string gateway_id_;
  const std::string pump_id_;
  const bool hello_lists_pump_;
  grpc::ClientContext ctx_;
  GatewayMessage out_;  // owned by the outstanding write (write_busy_)
  ServerMessage in_;    // owned by the outstanding read
  // Written by the pacer while no write is outstanding; read on the next write.
  uint64_t frame_id_ = 0;
  int64_t last_device_ms_ = 0;
  // Set from the Welcome before welcomed_ is published; then used by the pacer only.
  uint64_t next_seq_ = 1;
  int64_t started_ns_ = 0;
  std::atomic<int64_t> sent_ns_{0};
  std::atomic<bool> welcomed_{false};
  std::atomic<bool> write_busy_{false};
  std::atomic<bool> awaiting_ack_{false};
  std::atomic<bool> read_ended_{false};
  // Written on the read path before OnDone.
  bool ended_early_ = false;
  bool acked_ = false;
  grpc::StatusCode final_code_ = grpc::StatusCode::UNKNOWN;
  bool done_ = false;  // under h_->mu_
};

bool HoldReport::Success() const { return FailureReason().empty(); }

std::string HoldReport::FailureReason() const {
  std::vector<std::string> why;
  if (established != requested) {
    why.push_back(absl::StrCat(requested - established, " of ", requested,
                               " streams not established (", FormatCodes(failed_codes), ")"));
  }
  if (dropped > 0) {
    why.push_back(
        absl::StrCat(dropped, " streams ended while held (", FormatCodes(dropped_codes), ")"));
  }
  if (streams_acked != established) {
    why.push_back(absl::StrCat(established - streams_acked, " established streams got no Ack"));
  }
  if (nacks > 0) why.push_back(absl::StrCat(nacks, " Nacks"));
  if (closed_ok + dropped != established) {
    why.push_back(absl::StrCat(established - dropped - closed_ok,
                               " streams did not end OK after the half-close (",
                               FormatCodes(close_codes), ")"));
  }
  if (abandoned > 0) why.push_back(absl::StrCat(abandoned, " streams without a final status"));
  return absl::StrJoin(why, "; ");
}

StreamHolder::StreamHolder(HoldOptions options)
    : opts_(std::move(options)), t0_(absl::Now()), next_progress_(t0_) {}

StreamHolder::~StreamHolder() = default;

void StreamHolder::Progress(const char* phase) {
  if (!opts_.progress || absl::Now() < next_progress_) return;
  next_progress_ = absl::Now() + opts_.progress_interval;
  Counts c;
  {
    absl::MutexLock l(&mu_);
    c = counts_;
  }
  std::string server;
  if (auto f = ServerFootprint()) {
    server = absl::StrFormat(" server_rss_mb=%.0f server_threads=%d server_fds=%d",
                             f->rss_bytes / 1e6, f->threads, f->open_fds);
  }
  opts_.progress(
      absl::StrFormat("t=%.1fs phase=%s channels=%d started=%d established=%d failed=%d dropped=%d "
                      "frames_sent=%d acks=%d in_flight=%d%s",
                      absl::ToDoubleSeconds(absl::Now() - t0_), phase, channels_.size(),
                      streams_.size(), c.established, c.connect_failed, c.dropped,
                      frames_sent_.load(), acks_.load(), c.frames_in_flight, server));
}

bool StreamHolder::WaitFor(const char* phase, const std::function<bool(const Counts&)>& cond,
                           absl::Time deadline) {
  for (;;) {
    Progress(phase);
    const absl::Time until = opts_.progress ? std::min(deadline, next_progress_) : deadline;
    absl::MutexLock l(&mu_);
    auto met = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return cond(counts_); };
    if (mu_.AwaitWithDeadline(absl::Condition(&met), until)) return true;
    if (absl::Now() >= deadline) return false;
  }
}

void StreamHolder::SleepUntil(absl::Time t) {
  // Pacing, not synchronisation: nothing is waited for but the clock.
  for (absl::Time now = absl::Now(); now < t; now = absl::Now()) {
    Progress("hold");
    absl::SleepFor((opts_.progress ? std::min(t, next_progress_) : t) - now);
  }
}

void StreamHolder::ConnectPhase(absl::Time deadline) {
  const absl::Time rpc_deadline = t0_ + opts_.max_total;
  const int per_channel = std::max(1, opts_.streams_per_channel);
  first_start_ = absl::Now();
  for (int i = 0; i < opts_.streams; ++i) {
    const int in_handshake_limit = std::max(1, opts_.connect_concurrency);
    const int started = i;
    auto room = [&](const Counts& c) {
      return started - c.established - c.connect_failed < in_handshake_limit;
    };
    if (!WaitFor("connect", room, deadline)) break;
    if (i % per_channel == 0) {
      grpc::ChannelArguments args;
      // Its own subchannel pool: this channel gets its own TCP connection instead of
      // sharing one with every channel of equal arguments.
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      channels_.push_back(
          grpc::CreateCustomChannel(opts_.target, grpc::InsecureChannelCredentials(), args));
      stubs_.push_back(pumptwin::v1::DeviceGateway::NewStub(channels_.back()));
    }
    streams_.push_back(std::make_unique<Stream>(this, HoldGatewayId(opts_, i), HoldPumpId(opts_, i),
                                                opts_.hello_lists_pump));
    streams_.back()->Begin(stubs_.back().get(), rpc_deadline);
  }
  const int started = static_cast<int>(streams_.size());
  WaitFor(
      "connect", [started](const Counts& c) { return c.established + c.connect_failed == started; },
      deadline);
  // Whatever is still in its handshake now counts as failed.
  for (auto& s : streams_) {
    if (!s->welcomed()) s->Cancel();
  }
}

void StreamHolder::HoldPhase(absl::Time end, absl::Time hard_end) {
  hold_start_ = absl::Now();
  const int n = static_cast<int>(streams_.size());
  const absl::Duration interval = opts_.frame_interval;
  // Stream i sends at hold_start + round * interval + i * interval / n. A pacer running late
  // finishes its round (so every stream sends at least once), bounded by the hard end.
  for (int64_t round = 0;; ++round) {
    const absl::Time round_start = hold_start_ + round * interval;
    if (round_start >= end) break;
    for (int i = 0; i < n; ++i) {
      const absl::Time due = round_start + interval * i / n;
      if (due >= end || absl::Now() >= hard_end) break;
      SleepUntil(due);
      if (!streams_[i]->alive()) continue;
      if (streams_[i]->TrySendFrame()) {
        frames_sent_.fetch_add(1);
      } else {
        skipped_.fetch_add(1);
      }
    }
  }
  SleepUntil(end);
  hold_end_ = absl::Now();
}

void StreamHolder::ClosePhase(absl::Time hard_end) {
  // Outstanding frames get their Acks (or the stream ends), then everyone half-closes.
  WaitFor(
      "drain", [](const Counts& c) { return c.frames_in_flight == 0 && c.writes_in_flight == 0; },
      std::min(hard_end, absl::Now() + opts_.drain_timeout));
  closing_.store(true);
  for (auto& s : streams_) s->Close();
  const int n = static_cast<int>(streams_.size());
  auto all_done = [n](const Counts& c) { return c.done == n; };
  if (!WaitFor("close", all_done, std::min(hard_end, absl::Now() + opts_.close_timeout))) {
    for (auto& s : streams_) s->Cancel();
    WaitFor("close", all_done, absl::Now() + absl::Seconds(10));
  }
}

HoldReport StreamHolder::Run() {
  const absl::Time hard_end = t0_ + opts_.max_total;
  report_.requested = opts_.streams;
  report_.server_before = ServerFootprint();
  report_.client_before = ReadProcessFootprint(0);
  ConnectPhase(std::min(hard_end, absl::Now() + opts_.connect_timeout));
  report_.server_held = ServerFootprint();
  report_.client_held = ReadProcessFootprint(0);
  {
    absl::MutexLock l(&mu_);
    if (counts_.established > 0)
      report_.establish_time = absl::FromUnixNanos(last_welcome_ns_) - first_start_;
  }
  HoldPhase(std::min(hard_end, absl::Now() + opts_.hold), hard_end);
  report_.server_end = ServerFootprint();
  report_.client_end = ReadProcessFootprint(0);
  ClosePhase(hard_end);
  return Summarize();
}

std::optional<ProcessFootprint> StreamHolder::ServerFootprint() const {
  if (opts_.server_pid <= 0) return std::nullopt;
  return ReadProcessFootprint(opts_.server_pid);
}

HoldReport StreamHolder::Summarize() {
  HoldReport& r = report_;
  r.started = static_cast<int>(streams_.size());
  r.channels = static_cast<int>(channels_.size());
  r.failed = r.requested - r.started;
  if (r.failed > 0) r.failed_codes["NOT_STARTED"] = r.failed;
  absl::MutexLock l(&mu_);
  for (const auto& s : streams_) {
    if (!s->done()) {
      ++r.abandoned;
      if (!s->welcomed()) ++r.failed;
      if (s->welcomed()) ++r.established;
      continue;
    }
    const std::string code = CodeName(s->final_code());
    if (!s->welcomed()) {
      ++r.failed;
      ++r.failed_codes[code];
      continue;
    }
    ++r.established;
    if (s->acked()) ++r.streams_acked;
    if (s->ended_early()) {
      ++r.dropped;
      ++r.dropped_codes[code];
    } else if (s->final_code() == grpc::StatusCode::OK) {
      ++r.closed_ok;
    } else {
      ++r.close_codes[code];
    }
  }
  const std::vector<int64_t> hs = handshake_.SortedNanos();
  r.handshake_ms_p50 = PercentileMs(hs, 0.5);
  r.handshake_ms_p99 = PercentileMs(hs, 0.99);
  const std::vector<int64_t> acks = ack_.SortedNanos();
  r.ack_ms_p50 = PercentileMs(acks, 0.5);
  r.ack_ms_p99 = PercentileMs(acks, 0.99);
  r.ack_ms_max = acks.empty() ? 0 : acks.back() / 1e6;
  r.held_for = hold_end_ - hold_start_;
  r.frames_sent = frames_sent_.load();
  r.acks = acks_.load();
  r.nacks = nacks_.load();
  r.flow_controls = flow_controls_.load();
  r.skipped_busy = skipped_.load();
  return r;
}

}  // namespace pumptwin::loadgen
