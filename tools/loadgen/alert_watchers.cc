#include "tools/loadgen/alert_watchers.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace pumptwin::loadgen {

void RaiseLog::Add(absl::Time sent) {
  absl::MutexLock l(&mu_);
  sent_.push_back(sent);
}

absl::Time RaiseLog::Get(size_t k) const {
  absl::MutexLock l(&mu_);
  return k < sent_.size() ? sent_[k] : absl::InfinitePast();
}

class AlertWatchers::Stream final : public grpc::ClientReadReactor<pumptwin::v1::AlertEvent> {
 public:
  Stream(AlertWatchers* owner, pumptwin::v1::TwinService::Stub* stub, bool reads)
      : owner_(owner), reads_(reads) {
    ctx_.set_deadline(std::chrono::system_clock::now() +
                      absl::ToChronoMilliseconds(owner->opts_.max_total));
    req_.set_from_cursor(0);  // a fresh server: the history holds none of the probe's alerts
    stub->async()->WatchAlerts(&ctx_, &req_, this);
    if (reads_) StartRead(&ev_);
    StartCall();
  }
  void Cancel() {
    cancelled_ = true;
    ctx_.TryCancel();
  }
  void OnReadInitialMetadataDone(bool ok) override {
    if (ok) owner_->OnStarted();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    owner_->events_.fetch_add(1, std::memory_order_relaxed);
    const auto& a = ev_.alert();
    if (a.pump_id() == owner_->opts_.probe_pump && a.state() == pumptwin::v1::ALERT_STATE_RAISED &&
        a.type() == pumptwin::v1::ALERT_TYPE_MOTOR_STALL) {
      const absl::Time sent = owner_->raises_->Get(raised_seen_++);
      if (sent != absl::InfinitePast()) owner_->latency_.Add(absl::Now() - sent);
    }
    StartRead(&ev_);
  }
  void OnDone(const grpc::Status& s) override {
    // The server's subscriber maximum (a trailers-only answer: no events, no headers).
    owner_->OnDone(!cancelled_.load(),
                   s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
                       absl::StrContains(s.error_message(), "max_subscribers"),
                   reads_);
  }

 private:
  AlertWatchers* const owner_;
  const bool reads_;
  grpc::ClientContext ctx_;
  pumptwin::v1::WatchAlertsRequest req_;
  pumptwin::v1::AlertEvent ev_;
  size_t raised_seen_ = 0;
  std::atomic<bool> cancelled_{false};
};

AlertWatchers::AlertWatchers(WatchOptions options, const RaiseLog* raises)
    : opts_(std::move(options)), raises_(raises) {}

void AlertWatchers::OnStarted() {
  absl::MutexLock l(&mu_);
  ++started_;
}

void AlertWatchers::OnDone(bool early, bool refused, bool reads) {
  absl::MutexLock l(&mu_);
  ++done_;
  if (refused) {
    ++refused_;
    if (reads) ++refused_reading_;
  } else if (early) {
    ++ended_early_;
  }
}

int AlertWatchers::refused() const {
  absl::MutexLock l(&mu_);
  return refused_;
}

int AlertWatchers::refused_reading() const {
  absl::MutexLock l(&mu_);
  return refused_reading_;
}

int AlertWatchers::started() const {
  absl::MutexLock l(&mu_);
  return started_;
}

int AlertWatchers::ended_early() const {
  absl::MutexLock l(&mu_);
  return ended_early_;
}

bool AlertWatchers::Start(absl::Duration timeout) {
  const int per = std::max(1, opts_.per_channel);
  const absl::Time deadline = absl::Now() + timeout;
  auto all = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return started_ + done_ >= static_cast<int>(streams_.size());
  };
  // Stalled and reading streams on connections of their own, one connection's streams at a
  // time: each block is answered (held or refused) before the next opens, so a server at
  // its maximum holds the first blocks in this order, stalled and reading alike, however
  // the connections' handshakes race.
  auto open = [&](int from, int to, bool reads) {
    for (int i = from; i < to; i += per) {
      grpc::ChannelArguments args;
      args.SetInt("pumptwin.loadgen.watch_channel", static_cast<int>(channels_.size()));
      channels_.push_back(
          grpc::CreateCustomChannel(opts_.target, grpc::InsecureChannelCredentials(), args));
      stubs_.push_back(pumptwin::v1::TwinService::NewStub(channels_.back()));
      for (int j = i; j < std::min(to, i + per); ++j) {
        streams_.push_back(std::make_unique<Stream>(this, stubs_.back().get(), reads));
      }
      absl::MutexLock l(&mu_);
      mu_.AwaitWithDeadline(absl::Condition(&all), deadline);
    }
  };
  const int stalled = std::clamp(opts_.stalled, 0, opts_.watchers);
  for (int s = 0, r = stalled; s < stalled || r < opts_.watchers; s += per, r += per) {
    if (s < stalled) open(s, std::min(stalled, s + per), false);
    if (r < opts_.watchers) open(r, std::min(opts_.watchers, r + per), true);
  }
  absl::MutexLock l(&mu_);
  mu_.AwaitWithDeadline(absl::Condition(&all), deadline);
  return started_ + refused_ >= static_cast<int>(streams_.size());
}

AlertWatchers::~AlertWatchers() {
  for (auto& s : streams_) s->Cancel();
  absl::MutexLock l(&mu_);
  auto all_done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return done_ >= static_cast<int>(streams_.size());
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&all_done), absl::Seconds(60))) {
    // A stream that never finished still references its reactor: leak them all.
    for (auto& s : streams_) (void)s.release();
  }
}

AlertProbe::AlertProbe(ProbeOptions options, RaiseLog* raises)
    : opts_(std::move(options)),
      raises_(raises),
      // Device time of seq 1: early enough that 200 000 one-second samples stay in the past.
      start_ms_(absl::ToUnixMillis(absl::Now()) - 200'000'000) {}

AlertProbe::~AlertProbe() { Stop(); }

grpc::Status AlertProbe::RegisterProbe(pumptwin::v1::TwinService::Stub& stub) {
  return RegisterPumps(stub, {{opts_.pump_id, opts_.gateway_id}},
                       RegistrationTemplate{.implant_time_ms = start_ms_ - 1000}, 1);
}

bool AlertProbe::Start() {
  device_link::GatewayClientOptions o;
  o.target = opts_.target;
  o.credentials = grpc::InsecureChannelCredentials();
  o.gateway_id = opts_.gateway_id;
  o.channel_args.SetInt("pumptwin.loadgen.probe", 1);
  client_ = std::make_unique<device_link::GatewayClient>(std::move(o));
  client_->Start();
  return client_->WaitUntilWelcomed(1, absl::Seconds(10));
}

void AlertProbe::Begin() {
  if (client_ != nullptr && !thread_.joinable()) thread_ = std::thread([this] { Run(); });
}

void AlertProbe::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (client_ != nullptr) {
    client_->WaitUntilAllDone(absl::Seconds(10));
    client_->Stop();
  }
}

void AlertProbe::Run() {
  uint64_t seq = client_->acked_seq(opts_.pump_id) + 1;
  const pumptwin::v1::TelemetrySample base = SampleTemplate(opts_.pump_id);
  for (int64_t i = 0; i < 200'000 && !stop_.load(); ++i) {
    pumptwin::v1::TelemetrySample s = base;
    s.set_seq(seq);
    s.set_device_time_ms(start_ms_ + static_cast<int64_t>(seq) * 1000);
    ++seq;
    const bool raise = i % 2 == 0;
    if (raise) {
      s.set_alarm_flags(pumptwin::v1::ALARM_FLAG_MOTOR_STALL);
    } else {
      auto* e = s.add_events();
      e->set_type(pumptwin::v1::DEVICE_EVENT_MOTOR_STALL_RECOVERY);
      e->set_device_time_ms(s.device_time_ms());
    }
    if (raise) {
      raises_->Add(absl::Now());  // before the send: a fast alert finds its send time
      ++raises_sent_;
    }
    if (!client_->Send({std::move(s)}).ok()) break;
    absl::SleepFor(opts_.interval);  // the probe's pace, not a synchronisation
  }
}

absl::Status AlertLoad::Start() {
  if (options_.watchers <= 0 && options_.probe_interval <= absl::ZeroDuration()) {
    return absl::OkStatus();
  }
  if (!IsLoopbackTarget(options_.target)) {
    return absl::InvalidArgumentError(
        "--watch_alerts / --alert_probe_ms: --target must be loopback");
  }
  if (options_.probe_interval > absl::ZeroDuration()) {
    probe_ = std::make_unique<AlertProbe>(
        ProbeOptions{.target = options_.target, .interval = options_.probe_interval}, &raises_);
    auto stub = v1::TwinService::NewStub(
        grpc::CreateChannel(options_.target, grpc::InsecureChannelCredentials()));
    if (grpc::Status st = probe_->RegisterProbe(*stub); !st.ok()) {
      return absl::UnavailableError(absl::StrCat("probe registration: ", st.error_message()));
    }
  }
  if (options_.watchers > 0) {
    watchers_ = std::make_unique<AlertWatchers>(WatchOptions{.target = options_.target,
                                                             .watchers = options_.watchers,
                                                             .stalled = options_.stalled,
                                                             .per_channel = options_.per_channel,
                                                             .probe_pump = "alertprobe",
                                                             .max_total = options_.max_total},
                                                &raises_);
    if (!watchers_->Start(absl::Seconds(120))) {
      return absl::DeadlineExceededError(absl::StrCat(
          "only ", watchers_->started(), " of ", options_.watchers,
          " WatchAlerts subscribers started (", watchers_->refused(), " refused) within 120 s"));
    }
  }
  if (probe_ != nullptr && !probe_->Start()) {
    return absl::UnavailableError("alert probe: no Welcome within 10 s");
  }
  return absl::OkStatus();
}

int AlertLoad::held_readers() const {
  if (watchers_ == nullptr) return 0;
  return options_.watchers - std::clamp(options_.stalled, 0, options_.watchers) -
         watchers_->refused_reading();
}

void AlertLoad::Begin() {
  if (probe_ != nullptr) probe_->Begin();
}

void AlertLoad::Finish() {
  if (probe_ == nullptr) return;
  probe_->Stop();
  // Every held reading subscriber times every raise: give the last ones a moment to arrive.
  if (watchers_ != nullptr) {
    watchers_->latency().WaitForCount(static_cast<size_t>(held_readers()) * probe_->raises(),
                                      absl::Now() + absl::Seconds(5));
  }
}

std::string AlertLoad::Summary() const {
  if (watchers_ == nullptr && probe_ == nullptr) return "";
  const std::vector<int64_t> al =
      watchers_ != nullptr ? watchers_->latency().SortedNanos() : std::vector<int64_t>();
  return absl::StrFormat(
      "watchers=%d stalled=%d watchers_refused=%d readers_held=%d watchers_ended_early=%d "
      "alert_events_read=%lld probe_raises=%lld "
      "alert_latencies=%zu alert_latency_ms_p50=%.3f p99=%.3f max=%.3f",
      options_.watchers, watchers_ != nullptr ? options_.stalled : 0,
      watchers_ != nullptr ? watchers_->refused() : 0, held_readers(),
      watchers_ != nullptr ? watchers_->ended_early() : 0,
      static_cast<long long>(watchers_ != nullptr ? watchers_->events_read() : 0),
      static_cast<long long>(probe_ != nullptr ? probe_->raises() : 0), al.size(),
      PercentileMs(al, 0.50), PercentileMs(al, 0.99), al.empty() ? 0.0 : al.back() / 1e6);
}

}  // namespace pumptwin::loadgen
