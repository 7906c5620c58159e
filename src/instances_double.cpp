// posenc::instances: the explicit instantiations that posenc/instances.hpp declares, for double.
#include <posenc/instances.hpp>

POSENC_INSTANCES(, double)
