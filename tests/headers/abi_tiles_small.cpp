// abi_tiles.cpp with 16 x 16 attention tiles.
#define ABI_SMALL_TILES
#include "abi_tiles.cpp"
