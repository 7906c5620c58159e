// posenc::instances: the explicit instantiations that posenc/instances.hpp declares, for float.
#include <posenc/instances.hpp>

POSENC_INSTANCES(, float)
