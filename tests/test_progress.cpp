// The sweep runner's progress: the rate meter (sweep/rate_meter.hpp) fed
// synthetic timestamps, and the worker-to-runner line protocol and its
// console text (sweep/progress.hpp).
#include <gtest/gtest.h>

#include <cmath>

#include "sweep/progress.hpp"
#include "sweep/rate_meter.hpp"

using drift::sweep::CellProgress;
using drift::sweep::RateMeter;

TEST(RateMeter, NoRateBeforeTwoSamples) {
  RateMeter m;
  EXPECT_FALSE(m.rate().has_value());
  EXPECT_FALSE(m.eta_seconds(100).has_value());
  m.add(5.0, 1);
  EXPECT_FALSE(m.rate().has_value());
  EXPECT_FALSE(m.eta_seconds(100).has_value());
  // Two samples at the same instant: no time between them, still no rate.
  m.add(5.0, 2);
  EXPECT_FALSE(m.rate().has_value());
  EXPECT_FALSE(m.eta_seconds(100).has_value());
  m.add(6.0, 4);
  ASSERT_TRUE(m.rate().has_value());
  EXPECT_DOUBLE_EQ(*m.rate(), 3.0);  // 3 steps in 1 s
}

TEST(RateMeter, EtaIsRemainingOverRate) {
  RateMeter m;
  for (int i = 0; i <= 10; ++i) m.add(i * 0.5, i);  // 2 steps/s
  ASSERT_TRUE(m.rate().has_value());
  EXPECT_NEAR(*m.rate(), 2.0, 1e-12);
  ASSERT_TRUE(m.eta_seconds(110).has_value());
  EXPECT_NEAR(*m.eta_seconds(110), (110 - 10) / 2.0, 1e-9);
  EXPECT_EQ(*m.eta_seconds(10), 0.0);  // done
  EXPECT_EQ(m.count(), 10);
}

TEST(RateMeter, NoProgressGivesNoEta) {
  RateMeter m;
  m.add(0, 7);
  m.add(30, 7);  // stalled: rate 0, no division by it
  ASSERT_TRUE(m.rate().has_value());
  EXPECT_EQ(*m.rate(), 0.0);
  EXPECT_FALSE(m.eta_seconds(100).has_value());
}

// A slow phase (10 minutes at 0.1 steps/s: the first steps of a cell, or a
// pre-training counted on the same clock) then two minutes of fast steps: the
// rate is the fast one, not the average since the start.
TEST(RateMeter, SlowStartThenFastStepsGivesTheFastRate) {
  RateMeter m(60.0);
  int64_t step = 0;
  double t = 0;
  for (; t < 600; t += 10) m.add(t, ++step);  // 0.1 steps/s
  for (int i = 0; i < 1200; ++i) {             // then 10 steps/s for 120 s
    t += 0.1;
    m.add(t, ++step);
  }
  ASSERT_TRUE(m.rate().has_value());
  EXPECT_NEAR(*m.rate(), 10.0, 0.1);
  const double average_since_start = static_cast<double>(step) / t;
  EXPECT_LT(average_since_start, 2.0);  // what the old console showed
  ASSERT_TRUE(m.eta_seconds(step + 1000).has_value());
  EXPECT_NEAR(*m.eta_seconds(step + 1000), 100.0, 1.0);
}

// Fast steps then a slow stretch (an evaluation pass, a busy machine): the
// rate follows within one window.
TEST(RateMeter, FollowsASlowdownWithinTheWindow) {
  RateMeter m(60.0);
  int64_t step = 0;
  double t = 0;
  for (int i = 0; i < 600; ++i) m.add(t += 0.1, ++step);  // 10 steps/s
  for (int i = 0; i < 20; ++i) m.add(t += 5.0, ++step);   // 0.2 steps/s for 100 s
  ASSERT_TRUE(m.rate().has_value());
  EXPECT_NEAR(*m.rate(), 0.2, 0.02);
}

// Steps further apart than the window: the two newest samples still give a rate.
TEST(RateMeter, StepsSlowerThanTheWindow) {
  RateMeter m(60.0);
  m.add(0, 1);
  m.add(120, 2);
  m.add(240, 3);
  ASSERT_TRUE(m.rate().has_value());
  EXPECT_NEAR(*m.rate(), 1.0 / 120, 1e-12);
}

// Many samples per second (coalesced by the meter): the rate is still right.
TEST(RateMeter, DenseSamplesStayBounded) {
  RateMeter m(60.0);
  for (int i = 1; i <= 200000; ++i) m.add(i * 0.001, i);  // 1000 steps/s for 200 s
  ASSERT_TRUE(m.rate().has_value());
  EXPECT_NEAR(*m.rate(), 1000.0, 1.0);
}

TEST(RateMeter, CounterGoingBackStartsOver) {
  RateMeter m;
  m.add(0, 0);
  m.add(10, 100);
  m.add(11, 3);  // a new counter
  EXPECT_FALSE(m.rate().has_value());
  m.add(12, 5);
  ASSERT_TRUE(m.rate().has_value());
  EXPECT_DOUBLE_EQ(*m.rate(), 2.0);
}

// ---------------------------------------------------------------- the line protocol
TEST(CellProgress, PhasesAndTheirConsoleText) {
  using namespace drift::sweep;
  CellProgress p;
  EXPECT_EQ(format_progress(p), "[starting]");

  CellProgress ended;
  bool changed = false;
  ASSERT_TRUE(apply_progress_line(phase_line("setup", "", "loading the data"), p, &ended, &changed));
  EXPECT_TRUE(changed);
  EXPECT_EQ(ended.phase, "starting");
  EXPECT_EQ(format_progress(p), "[setup] loading the data");

  ASSERT_TRUE(apply_progress_line(progress_line("pretrain", "mae_resnet", 1200, 4000, 2.1, 0.0213), p, &ended,
                                  &changed));
  EXPECT_TRUE(changed);
  EXPECT_EQ(format_progress(p), "[pretrain mae_resnet] step 1200/4000  loss 0.0213  2.10 steps/s  ETA 22m13s");
  ASSERT_TRUE(apply_progress_line(progress_line("pretrain", "mae_resnet", 4000, 4000, 2.0, 0.01), p, &ended,
                                  &changed));
  EXPECT_FALSE(changed);

  ASSERT_TRUE(apply_progress_line(progress_line("cache", "mae_resnet", 30000, 60000, 512.0, std::nullopt), p,
                                  &ended, &changed));
  EXPECT_TRUE(changed);
  EXPECT_EQ(ended.phase, "pretrain");
  EXPECT_EQ(format_phase_end(ended, 2000.0), "[pretrain mae_resnet] step 4000/4000 in 33m20s (2.00 steps/s)");
  EXPECT_EQ(format_progress(p), "[cache mae_resnet] 30000/60000 images  512.0 images/s  ETA 59s");

  // A note in the same phase keeps its counts (the summary at its end has them).
  ASSERT_TRUE(apply_progress_line(phase_line("cache", "mae_resnet", "writing x.h5"), p, &ended, &changed));
  EXPECT_EQ(format_progress(p), "[cache mae_resnet] writing x.h5");
  EXPECT_EQ(p.done, 30000);

  // No rate yet (the first step): "?" for the rate and the ETA, never a division by zero.
  ASSERT_TRUE(apply_progress_line(progress_line("train", "", 1, 4000, std::nullopt, 0.5, {0.12, 0.3}), p, &ended,
                                  &changed));
  EXPECT_EQ(format_progress(p), "[train] step 1/4000  loss 0.5  ? steps/s  ETA ?  m_tau [0.12,0.3]");
  ASSERT_TRUE(apply_progress_line(progress_line("train", "", 4000, 4000, 3.0, 0.25, {0.1}), p));
  EXPECT_EQ(format_progress(p), "[train] step 4000/4000  loss 0.25  3.00 steps/s  ETA 0s  m_tau [0.1]");

  // Other lines are not progress; a phase that counted nothing has no summary.
  EXPECT_FALSE(apply_progress_line("@eval 10 fid 3.2", p));
  EXPECT_FALSE(apply_progress_line("@progress train", p));
  EXPECT_EQ(format_phase_end(CellProgress{}, 3.0), "");
}
