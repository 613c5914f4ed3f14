# hostile: results whose __eq__ / comparisons are always true, and that claim any shape
# honest: 0
class Yes:
    shape = property(lambda self: (10**9,))
    dtype = "float64"

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __lt__ = __le__ = __gt__ = __ge__ = __eq__

    def __len__(self):
        return 30000

    def __array__(self, *args, **kwargs):
        raise TypeError("no")

    def item(self):
        return self

    def tolist(self):
        return self


def argmax_random_ties(values, rng):
    return Yes()


class EpsilonGreedy:
    def __init__(self, *args, **kwargs):
        self.Q = self.N = Yes()

    def act(self):
        return Yes()

    def update(self, actions, rewards):
        pass


UCB = GradientBandit = EpsilonGreedy
