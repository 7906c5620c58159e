// posenc: Transformer positional encodings, header-only (C++17, Eigen 3.4).
//
// Sinusoidal, learned absolute, RoPE (with its context-extension scalings), ALiBi, T5, Shaw
// and Transformer-XL relative encodings behind one static interface (encoder.hpp), and the
// multi-head self-attention kernel that consumes them (attention.hpp).
#pragma once

#include "version.hpp"

#include "alibi.hpp"
#include "attention.hpp"
#include "bert_relative.hpp"
#include "convert_layout.hpp"
#include "deberta.hpp"
#include "encoder.hpp"
#include "error.hpp"
#include "gradients.hpp"
#include "learned.hpp"
#include "mrope.hpp"
#include "relative.hpp"
#include "rope.hpp"
#include "shaw.hpp"
#include "sinusoidal.hpp"
#include "t5.hpp"
#include "temperature.hpp"
#include "transformer_xl.hpp"
#include "types.hpp"

// Linking posenc::instances: the built-in encoders are compiled in that library.
#ifdef POSENC_EXTERN_INSTANCES
#include "instances.hpp"
#endif
