#include <boost/test/unit_test.hpp>

#include <cmath>
#include <vector>

#include "mcnn/tensor.hpp"

using namespace mcnn;

BOOST_AUTO_TEST_SUITE(tensor)

BOOST_AUTO_TEST_CASE(shape_basics) {
    const Shape s{2, 3, 4, 5};
    BOOST_TEST(s.rank() == 4);
    BOOST_TEST(s.numel() == 120u);
    BOOST_TEST(s[-1] == 5);
    BOOST_TEST(s.str() == "[2, 3, 4, 5]");
    BOOST_TEST(Shape{}.numel() == 1u);
    BOOST_CHECK_THROW(Shape({1, 2, 3, 4, 5}), Error);
    BOOST_CHECK_THROW(Shape({2, -1}), Error);
    BOOST_CHECK_THROW(s[4], Error);
}

BOOST_AUTO_TEST_CASE(element_access_is_row_major) {
    Tensor<float> t(Shape{2, 3});
    t.at({1, 2}) = 7.f;
    BOOST_TEST(t[5] == 7.f);
    BOOST_TEST(t.matrix()(1, 2) == 7.f);
    BOOST_CHECK_THROW(t.at({2, 0}), Error);
    BOOST_CHECK_THROW(t.at({0}), Error);
}

BOOST_AUTO_TEST_CASE(reshape_keeps_data_and_checks_count) {
    Tensor<double> t(Shape{2, 6}, std::vector<double>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
    const Tensor<double> r = t.reshaped(Shape{3, 4});
    BOOST_TEST(r.at({2, 3}) == 11.0);
    try {
        t.reshape(Shape{5});
        BOOST_FAIL("expected an error");
    } catch (const Error& e) {
        BOOST_TEST(std::string(e.what()).find("[2, 6]") != std::string::npos);
        BOOST_TEST(std::string(e.what()).find("[5]") != std::string::npos);
    }
    BOOST_CHECK_THROW(Tensor<double>(Shape{2, 2}, std::vector<double>{1, 2, 3}), Error);
    BOOST_CHECK_THROW(t.matrix(5, 3), Error);
}

BOOST_AUTO_TEST_CASE(cast_between_precisions) {
    Tensor<float> f(Shape{3}, std::vector<float>{1.5f, -2.f, 0.25f});
    const Tensor<double> d = f.cast<double>();
    BOOST_TEST(d.shape() == f.shape());
    BOOST_TEST(d[0] == 1.5);
    BOOST_TEST(d[1] == -2.0);
}

BOOST_AUTO_TEST_CASE(constructors_and_fill_write_every_element) {
    // The storage allocator leaves grown elements uninitialised (for resize); a shape and a fill
    // value must still give that value everywhere, also in memory that held other values before.
    for (int round = 0; round < 3; ++round) {
        std::vector<Tensor<float>> dirty;
        for (int i = 0; i < 8; ++i) dirty.emplace_back(Shape{1000 + 7 * i}, -3.5f);
        dirty.clear();  // freed: the next tensors may get this memory back
        const Tensor<float> zeros(Shape{1021});
        const Tensor<float> twos(Shape{1007}, 2.f);
        for (std::size_t i = 0; i < zeros.numel(); ++i) BOOST_TEST_REQUIRE(zeros[i] == 0.f);
        for (std::size_t i = 0; i < twos.numel(); ++i) BOOST_TEST_REQUIRE(twos[i] == 2.f);
    }
    Tensor<double> t(Shape{5}, 1.0);
    t.fill(-0.0);  // negative zero is not all bits zero: written as a value
    for (std::size_t i = 0; i < t.numel(); ++i) BOOST_TEST(std::signbit(t[i]));
    t.set_zero();
    for (std::size_t i = 0; i < t.numel(); ++i) BOOST_TEST((t[i] == 0.0 && !std::signbit(t[i])));
    t.resize(Shape{2, 2});  // shrinking keeps the first elements
    BOOST_TEST(t.shape() == (Shape{2, 2}));
    BOOST_TEST(t[3] == 0.0);
}

BOOST_AUTO_TEST_SUITE_END()
