#include "device_link/gateway_client.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "device_link/sample_codec.h"

namespace pumptwin::device_link {

using v1::GatewayMessage;
using v1::ServerMessage;

namespace {

GatewayClientOptions Normalize(GatewayClientOptions o) {
  if (!o.clock) o.clock = [] { return absl::Now(); };
  if (!o.uniform01) {
    auto gen = std::make_shared<absl::BitGen>();  // only used by the supervisor thread
    o.uniform01 = [gen] { return absl::Uniform(*gen, 0.0, 1.0); };
  }
  if (!o.sleeper) o.sleeper = std::make_shared<RealSleeper>();
  if (o.max_buffered_frames == 0) o.max_buffered_frames = 1;
  if (o.max_unacked_frames == 0) o.max_unacked_frames = 1;
  return o;
}

// Permanent refusals: the sample is dropped from the buffer. STORE_UNAVAILABLE is transient.
// MOVED (cluster mode) is transient too: the sample stays buffered; a gateway whose target is
// a set of replicas (or a load balancer) reaches the serving one at a later session.
bool IsPermanent(v1::NackReason r) {
  return r != v1::NACK_REASON_STORE_UNAVAILABLE && r != v1::NACK_REASON_MOVED;
}

}  // namespace

// One session (stream). Owned by the supervisor thread, deleted after OnDone. A hold keeps
// OnDone from running while a non-reaction thread may still start a write: it is removed
// once reads have failed (stream over) and no write start is in progress. Fields below are
// guarded by the client's mu_.
class GatewayClient::Stream final : public grpc::ClientBidiReactor<GatewayMessage, ServerMessage> {
 public:
  Stream(GatewayClient* client, GatewayMessage hello) : client_(client), hello_(std::move(hello)) {}

  void Begin() {
    client_->stub_->async()->Connect(&ctx_, this);
    AddHold();
    StartRead(&read_msg_);
    StartWrite(&hello_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (ok) {
      client_->HandleServerMessage(read_msg_);
      StartRead(&read_msg_);
      client_->MaybeWrite();
      return;
    }
    bool remove = false;
    {
      absl::MutexLock l(&client_->mu_);
      open_ = false;
      if (starting_ops_ == 0 && !hold_removed_) remove = hold_removed_ = true;
    }
    if (remove) RemoveHold();
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock l(&client_->mu_);
      writing_ = false;
      current_.reset();
      if (!ok) broken_ = true;
    }
    if (ok) client_->MaybeWrite();
  }

  void OnDone(const grpc::Status& s) override {
    absl::MutexLock l(&client_->mu_);
    // A cancellation we asked for (Stop) says nothing about the server: keep the previous.
    if (!client_->stopping_) {
      client_->stats_.last_stream_status =
          absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
    }
    client_->session_done_ = true;  // last touch of `this`: the supervisor may delete it now
  }

  grpc::ClientContext ctx_;
  GatewayClient* const client_;
  GatewayMessage hello_;
  ServerMessage read_msg_;
  // Guarded by client_->mu_.
  bool writing_ = true;  // the Hello
  bool open_ = true;
  bool broken_ = false;
  bool hold_removed_ = false;
  int starting_ops_ = 0;
  std::shared_ptr<const GatewayMessage> current_;  // the frame being written
};

GatewayClient::GatewayClient(GatewayClientOptions options) : opts_(Normalize(std::move(options))) {
  grpc::ChannelArguments args = opts_.channel_args;
  // Let our own backoff drive reconnects; the channel's default (1 s .. 120 s) would delay
  // them behind ours.
  const int initial_ms = static_cast<int>(absl::ToInt64Milliseconds(opts_.backoff.initial));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, std::max(1, initial_ms));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, std::max(1, initial_ms));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              std::max(1, static_cast<int>(absl::ToInt64Milliseconds(opts_.backoff.max))));
  channel_ = grpc::CreateCustomChannel(opts_.target, opts_.credentials, args);
  stub_ = v1::DeviceGateway::NewStub(channel_);
  absl::MutexLock l(&mu_);
  window_ = opts_.max_unacked_frames;
  max_samples_per_frame_ = opts_.max_samples_per_frame;
}

GatewayClient::~GatewayClient() { Stop(); }

void GatewayClient::Start() {
  absl::MutexLock l(&mu_);
  if (started_ || stopping_) return;
  started_ = true;
  supervisor_ = std::thread([this] { SupervisorLoop(); });
}

void GatewayClient::Stop() {
  {
    absl::MutexLock l(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  stop_.Notify();
  if (supervisor_.joinable()) supervisor_.join();
}

GatewayMessage GatewayClient::BuildHelloLocked() {
  GatewayMessage m;
  v1::Hello* h = m.mutable_hello();
  h->set_gateway_id(opts_.gateway_id);
  h->set_software_version(opts_.software_version);
  h->set_accepts_ack_batches(true);
  absl::flat_hash_set<absl::string_view> seen;
  auto add = [&](const std::string& id) {
    if (seen.insert(id).second) h->add_pump_ids(id);
  };
  for (const std::string& id : opts_.hello_pump_ids) add(id);
  for (const auto& [id, f] : frames_) {
    for (const PumpRange& p : f.pumps) add(p.pump_id);
  }
  return m;
}

void GatewayClient::SupervisorLoop() {
  int attempt = 0;
  while (true) {
    Stream* s;
    {
      absl::MutexLock l(&mu_);
      if (stopping_) break;
      if (++stats_.connect_attempts > 1) ++stats_.reconnects;
      s = new Stream(this, BuildHelloLocked());
      session_ = s;
      session_done_ = false;
      welcomed_ = false;
      want_reconnect_ = false;
      in_flight_ = 0;
      retry_hint_ = absl::ZeroDuration();
    }
    s->Begin();
    bool cancel;
    {
      absl::MutexLock l(&mu_);
      mu_.Await(absl::Condition(
          +[](GatewayClient* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu_) {
            return c->session_done_ || c->stopping_ || c->want_reconnect_;
          },
          this));
      cancel = !session_done_;
    }
    if (cancel) s->ctx_.TryCancel();
    bool welcomed;
    absl::Duration hint;
    {
      absl::MutexLock l(&mu_);
      mu_.Await(absl::Condition(&session_done_));
      session_ = nullptr;
      welcomed = welcomed_;
      welcomed_ = false;
      stats_.connected = false;
      hint = retry_hint_;
    }
    delete s;  // OnDone has run: no reaction or write start can touch it any more
    {
      absl::MutexLock l(&mu_);
      if (stopping_) break;
    }
    attempt = welcomed ? 1 : attempt + 1;
    const absl::Duration delay =
        std::max(BackoffDelay(opts_.backoff, attempt, opts_.uniform01()), hint);
    opts_.sleeper->SleepFor(delay, &stop_);
  }
}

absl::StatusOr<uint64_t> GatewayClient::Send(std::vector<v1::TelemetrySample> samples) {
  if (samples.empty()) return absl::InvalidArgumentError("a frame needs at least one sample");
  auto msg = std::make_shared<GatewayMessage>();
  v1::TelemetryFrame* frame = msg->mutable_frame();
  Frame f;
  frame->mutable_samples()->Reserve(static_cast<int>(samples.size()));
  for (v1::TelemetrySample& s : samples) {
    if (f.pumps.empty() || f.pumps.back().pump_id != s.pump_id()) {
      auto it = std::find_if(f.pumps.begin(), f.pumps.end(),
                             [&](const PumpRange& p) { return p.pump_id == s.pump_id(); });
      if (it == f.pumps.end()) {
        f.pumps.push_back(PumpRange{s.pump_id(), s.seq()});
      } else {
        it->max_seq = std::max(it->max_seq, s.seq());
      }
    } else {
      f.pumps.back().max_seq = std::max(f.pumps.back().max_seq, s.seq());
    }
    *frame->add_samples() = std::move(s);
  }
  uint64_t id;
  {
    absl::MutexLock l(&mu_);
    if (samples.size() > max_samples_per_frame_) {
      return absl::InvalidArgumentError(absl::StrCat("frame of ", samples.size(),
                                                     " samples exceeds max_samples_per_frame ",
                                                     max_samples_per_frame_));
    }
    // Hysteresis: once the buffer was full, Send waits for a quarter of it to free up, not
    // for one slot (one wake-up per burst of acks instead of one per ack).
    const size_t resume_room = std::max<size_t>(1, opts_.max_buffered_frames / 4);
    auto has_room = [this, resume_room]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return frames_.size() + resume_room <= opts_.max_buffered_frames || stopping_;
    };
    if (opts_.when_full == GatewayClientOptions::WhenFull::kBlock &&
        (refilling_ || frames_.size() >= opts_.max_buffered_frames)) {
      mu_.AwaitWithTimeout(absl::Condition(&has_room), opts_.block_timeout);
      refilling_ = false;
    }
    if (frames_.size() >= opts_.max_buffered_frames) {
      return absl::ResourceExhaustedError(
          absl::StrCat("store-and-forward buffer full: ", frames_.size(),
                       " frames not yet acknowledged (max_buffered_frames)"));
    }
    id = next_frame_id_++;
    frame->set_frame_id(id);
    f.msg = std::move(msg);
    frames_.emplace(id, std::move(f));
    send_queue_.push_back(id);
    if (frames_.size() >= opts_.max_buffered_frames) refilling_ = true;
  }
  MaybeWrite();
  return id;
}

absl::StatusOr<uint64_t> GatewayClient::SendTwin(absl::string_view pump_id,
                                                 const std::vector<twin::Sample>& samples) {
  std::vector<v1::TelemetrySample> out(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) ToProtoSample(pump_id, samples[i], &out[i]);
  return Send(std::move(out));
}

void GatewayClient::MaybeWrite() {
  Stream* s;
  std::shared_ptr<const GatewayMessage> msg;
  {
    absl::MutexLock l(&mu_);
    s = session_;
    if (s == nullptr || !welcomed_ || !s->open_ || s->broken_ || s->writing_) return;
    while (!send_queue_.empty() && in_flight_ < window_) {
      const uint64_t id = send_queue_.front();
      send_queue_.pop_front();
      auto it = frames_.find(id);
      if (it == frames_.end() || it->second.sent) continue;
      Frame& f = it->second;
      f.sent = true;
      if (f.ever_sent) ++stats_.frames_resent;
      f.ever_sent = true;
      f.sent_at = opts_.clock();
      ++in_flight_;
      ++stats_.frames_sent;
      stats_.samples_sent += f.msg->frame().samples_size();
      msg = f.msg;
      break;
    }
    if (!msg) return;
    s->writing_ = true;
    s->current_ = msg;
    ++s->starting_ops_;  // keeps the hold, hence `s`, alive until the StartWrite returns
  }
  s->StartWrite(msg.get());
  bool remove = false;
  {
    absl::MutexLock l(&mu_);
    --s->starting_ops_;
    if (!s->open_ && s->starting_ops_ == 0 && !s->hold_removed_) remove = s->hold_removed_ = true;
  }
  if (remove) s->RemoveHold();
}

size_t GatewayClient::SettleLocked(Frame& f, bool rebuild) {
  bool all = true;
  for (const PumpRange& p : f.pumps) {
    auto it = acked_.find(p.pump_id);
    if (it == acked_.end() || it->second < p.max_seq) {
      all = false;
      break;
    }
  }
  if (all) return 0;
  const auto& samples = f.msg->frame().samples();
  auto settled = [&](const v1::TelemetrySample& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = acked_.find(s.pump_id());
    if (it != acked_.end() && s.seq() <= it->second) return true;
    return std::find(f.nacked.begin(), f.nacked.end(), std::make_pair(s.pump_id(), s.seq())) !=
           f.nacked.end();
  };
  size_t remaining = 0;
  for (const v1::TelemetrySample& s : samples) remaining += settled(s) ? 0 : 1;
  if (rebuild && remaining > 0 && remaining < static_cast<size_t>(samples.size())) {
    auto msg = std::make_shared<GatewayMessage>();
    msg->mutable_frame()->set_frame_id(f.msg->frame().frame_id());
    std::vector<PumpRange> pumps;
    for (const v1::TelemetrySample& s : samples) {
      if (settled(s)) continue;
      *msg->mutable_frame()->add_samples() = s;
      auto it = std::find_if(pumps.begin(), pumps.end(),
                             [&](const PumpRange& p) { return p.pump_id == s.pump_id(); });
      if (it == pumps.end()) {
        pumps.push_back(PumpRange{s.pump_id(), s.seq()});
      } else {
        it->max_seq = std::max(it->max_seq, s.seq());
      }
    }
    f.msg = std::move(msg);
    f.pumps = std::move(pumps);
    f.nacked.clear();
  }
  return remaining;
}

void GatewayClient::OnWelcomeLocked(const v1::Welcome& w) {
  window_ = opts_.max_unacked_frames;
  if (w.max_unacked_frames() > 0) window_ = std::min(window_, w.max_unacked_frames());
  max_samples_per_frame_ = opts_.max_samples_per_frame;
  if (w.max_samples_per_frame() > 0) {
    max_samples_per_frame_ = std::min(max_samples_per_frame_, w.max_samples_per_frame());
  }
  for (const v1::PumpResumePoint& rp : w.resume_points()) {
    uint64_t& a = acked_[rp.pump_id()];
    a = std::max(a, rp.highest_durable_seq());
  }
  // Everything not yet settled is resent, in frame order, minus what is already stored.
  in_flight_ = 0;
  send_queue_.clear();
  for (auto it = frames_.begin(); it != frames_.end();) {
    Frame& f = it->second;
    f.sent = false;
    f.acked_in_session = false;
    const size_t before = f.msg->frame().samples_size();
    const size_t nacked = f.nacked.size();
    const size_t remaining = SettleLocked(f, /*rebuild=*/true);
    stats_.samples_dropped_by_resume += before - remaining - std::min(nacked, before - remaining);
    if (remaining == 0) {
      ++stats_.frames_done;
      it = frames_.erase(it);
    } else {
      send_queue_.push_back(it->first);
      ++it;
    }
  }
  welcomed_ = true;
  stats_.connected = true;
  ++stats_.sessions_welcomed;
}

void GatewayClient::OnAckLocked(const v1::Ack& a,
                                std::vector<std::pair<uint64_t, absl::Duration>>* done) {
  for (const v1::PumpResumePoint& rp : a.pumps()) {
    uint64_t& v = acked_[rp.pump_id()];
    v = std::max(v, rp.highest_durable_seq());
  }
  auto it = frames_.find(a.frame_id());
  if (it == frames_.end() || !it->second.sent || it->second.acked_in_session) return;
  Frame& f = it->second;
  f.acked_in_session = true;
  --in_flight_;
  // Samples not covered (e.g. nacked STORE_UNAVAILABLE) stay buffered for the next session.
  if (SettleLocked(f, /*rebuild=*/false) > 0) return;
  const size_t n = f.msg->frame().samples_size();
  stats_.samples_acked += n - std::min(n, f.nacked.size());
  ++stats_.frames_done;
  done->emplace_back(it->first, opts_.clock() - f.sent_at);
  frames_.erase(it);
}

void GatewayClient::HandleServerMessage(const ServerMessage& m) {
  std::vector<std::pair<uint64_t, absl::Duration>> done;
  std::vector<v1::TelemetrySample> moved;
  {
    absl::MutexLock l(&mu_);
    switch (m.kind_case()) {
      case ServerMessage::kWelcome:
        OnWelcomeLocked(m.welcome());
        break;
      case ServerMessage::kAck:
        OnAckLocked(m.ack(), &done);
        break;
      case ServerMessage::kAcks:
        for (const v1::Ack& a : m.acks().acks()) OnAckLocked(a, &done);
        break;
      case ServerMessage::kNack: {
        const v1::Nack& n = m.nack();
        ++stats_.samples_nacked;
        ++stats_.nacks_by_reason[n.reason()];
        const bool hand_back =
            n.reason() == v1::NACK_REASON_MOVED ||
            (n.reason() == v1::NACK_REASON_OUT_OF_ORDER && opts_.hand_back_out_of_order);
        if (hand_back && opts_.on_moved) {
          // Settled here; the hook sends it to the replica serving the pump.
          if (auto it = frames_.find(n.frame_id()); it != frames_.end()) {
            auto& nacked = it->second.nacked;
            const auto key = std::make_pair(n.pump_id(), n.seq());
            if (std::find(nacked.begin(), nacked.end(), key) == nacked.end()) {
              for (const v1::TelemetrySample& s : it->second.msg->frame().samples()) {
                if (s.pump_id() == n.pump_id() && s.seq() == n.seq()) {
                  moved.push_back(s);
                  nacked.push_back(key);
                  break;
                }
              }
            }
          }
        } else if (!IsPermanent(n.reason())) {
          want_reconnect_ = true;  // transient store failure: resend after backoff
        } else if (auto it = frames_.find(n.frame_id()); it != frames_.end()) {
          it->second.nacked.emplace_back(n.pump_id(), n.seq());
        }
        break;
      }
      case ServerMessage::kFlowControl: {
        const v1::FlowControl& fc = m.flow_control();
        if (fc.max_unacked_frames() > 0) {
          window_ = std::min(opts_.max_unacked_frames, fc.max_unacked_frames());
        }
        if (fc.retry_after_ms() > 0) retry_hint_ = absl::Milliseconds(fc.retry_after_ms());
        break;
      }
      default:
        break;
    }
  }
  if (m.has_welcome() && opts_.on_welcome) opts_.on_welcome(m.welcome());
  if (m.has_nack() && opts_.on_nack) opts_.on_nack(m.nack());
  for (v1::TelemetrySample& s : moved) opts_.on_moved(m.nack(), std::move(s));
  if (opts_.on_frame_done) {
    for (const auto& [id, latency] : done) opts_.on_frame_done(id, latency);
  }
}

bool GatewayClient::WaitUntilAllDone(absl::Duration timeout) {
  absl::MutexLock l(&mu_);
  auto empty = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return frames_.empty(); };
  return mu_.AwaitWithTimeout(absl::Condition(&empty), timeout);
}

bool GatewayClient::WaitUntilWelcomed(uint64_t n, absl::Duration timeout) {
  absl::MutexLock l(&mu_);
  auto cond = [this, n]()
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stats_.sessions_welcomed >= n; };
  return mu_.AwaitWithTimeout(absl::Condition(&cond), timeout);
}

std::vector<v1::TelemetrySample> GatewayClient::TakeUnsettled() {
  absl::MutexLock l(&mu_);
  std::vector<v1::TelemetrySample> out;
  for (auto& [id, f] : frames_) {
    if (SettleLocked(f, /*rebuild=*/true) == 0) continue;
    for (const v1::TelemetrySample& s : f.msg->frame().samples()) {
      auto it = acked_.find(s.pump_id());
      if (it != acked_.end() && s.seq() <= it->second) continue;
      if (std::find(f.nacked.begin(), f.nacked.end(), std::make_pair(s.pump_id(), s.seq())) !=
          f.nacked.end()) {
        continue;
      }
      out.push_back(s);
    }
  }
  frames_.clear();
  send_queue_.clear();
  in_flight_ = 0;
  return out;
}

std::vector<v1::TelemetrySample> GatewayClient::TakeUnsettled(absl::string_view pump_id) {
  absl::MutexLock l(&mu_);
  std::vector<v1::TelemetrySample> out;
  auto acked = acked_.find(pump_id);
  const uint64_t durable = acked == acked_.end() ? 0 : acked->second;
  for (auto& [id, f] : frames_) {
    for (const v1::TelemetrySample& s : f.msg->frame().samples()) {
      if (s.pump_id() != pump_id || s.seq() <= durable) continue;
      const auto key = std::make_pair(s.pump_id(), s.seq());
      if (std::find(f.nacked.begin(), f.nacked.end(), key) != f.nacked.end()) continue;
      f.nacked.push_back(key);
      out.push_back(s);
    }
  }
  return out;
}

GatewayClientStats GatewayClient::stats() const {
  absl::MutexLock l(&mu_);
  GatewayClientStats s = stats_;
  s.buffered_frames = frames_.size();
  return s;
}

uint64_t GatewayClient::acked_seq(absl::string_view pump_id) const {
  absl::MutexLock l(&mu_);
  auto it = acked_.find(pump_id);
  return it == acked_.end() ? 0 : it->second;
}

}  // namespace pumptwin::device_link
