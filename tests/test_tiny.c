/* test_tiny.c: `make tiny`, the seconds-long run docs/tour.md starts with, does what the tour
 * promises: it trains configs/tiny.json on the shipped sample to the end, its validation loss falls
 * well below where it starts, and it ends with a story (the sample line) after the prompt.
 *
 * A uniform guess over the 512-token vocabulary scores ln 512 = 6.24 nats; the first evaluation
 * (step 100, or 25 on sanitizer builds) is already below it and the last one must be at least 0.5
 * nats lower again, a drop seed noise cannot fake. */
#include <math.h>

#include "tests/cli_test_helpers.h"

static void test_tiny_run_learns_and_tells_a_story(void) {
    char args[1024], dir[600];
    snprintf(dir, sizeof dir, "%s/tiny", test_tmp_dir());
    /* Sanitizer builds run a quarter of the steps: the same config, a shorter schedule. */
    snprintf(args, sizeof args, "run configs/tiny.json --set out_dir=%s%s", dir,
             test_small() ? " --set train.max_steps=100 --set train.eval_every=25" : "");
    int rc = run_train(args);
    CHECKF(rc == 0, "exit %d, stderr: %s", rc, err_buf);
    if (rc != 0) return;

    double val[64];
    int rows = cli_log_column(dir, 3, val, 64);
    CHECKF(rows >= 4, "%d rows in %s/log.csv", rows, dir);
    if (rows < 4) return;
    double first = val[0], last = val[rows - 1];
    CHECKF(first < log(512.0), "first val loss %.3f is no better than a uniform guess", first);
    CHECKF(last < first - 0.5, "val loss only went from %.3f to %.3f", first, last);
    for (int i = 1; i < rows; i++) CHECKF(val[i] < val[i - 1] + 0.05, "val loss rose at row %d", i);

    const char *story = strstr(out_buf, "sample (temperature");
    CHECKF(story != NULL, "no sample in the output:\n%s", out_buf);
    if (story) {
        story = strchr(story, '\n');
        int letters = 0;
        for (const char *p = story; p && *p; p++) letters += (*p >= 'a' && *p <= 'z');
        CHECKF(letters >= 100, "the story has %d lower-case letters:\n%s", letters, story);
    }
}

int main(void) {
    RUN(test_tiny_run_learns_and_tells_a_story);
    return test_summary();
}
