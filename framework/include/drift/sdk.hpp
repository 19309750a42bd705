// drift SDK umbrella header: everything a plugin author needs.
#pragma once

#include "drift/affinity.hpp"
#include "drift/checksum.hpp"
#include "drift/dataset.hpp"
#include "drift/encoder.hpp"
#include "drift/features.hpp"
#include "drift/formation.hpp"
#include "drift/field.hpp"
#include "drift/field_steps.hpp"
#include "drift/generator.hpp"
#include "drift/kernel.hpp"
#include "drift/normalizer.hpp"
#include "drift/params.hpp"
#include "drift/plugin.hpp"
#include "drift/pretrain.hpp"
#include "drift/version.hpp"
#include "drift/weights.hpp"
