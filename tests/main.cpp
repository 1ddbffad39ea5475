#define BOOST_TEST_MODULE ManualCNN
#include <boost/test/unit_test.hpp>
