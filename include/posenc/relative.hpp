// posenc: the relative encodings: T5's bucketed bias (Raffel et al. 2020), Shaw et al.'s clipped
// relative representations (2018) and Transformer-XL's relative sinusoid (Dai et al. 2019).
// Each has its own header; this one includes them together.
#pragma once

#include "shaw.hpp"
#include "t5.hpp"
#include "transformer_xl.hpp"
