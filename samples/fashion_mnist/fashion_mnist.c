/* fashion_mnist: the flagship sample. Trains an MLP or a small CNN on
 * Fashion-MNIST (70,000 28x28 grey images of clothing, 10 classes) and shows
 * it learning: loss and test accuracy per epoch, a progress bar with ETA on a
 * terminal, a metrics CSV, a confusion matrix at the end, and checkpoints it
 * can resume from.
 *
 *   fashion_mnist [--model mlp|cnn] [--epochs N] [--batch B] [--lr LR]
 *                 [--seed S] [--device D] [--cpu | --cpu-fast] [--data DIR]
 *                 [--limit N] [--checkpoint FILE] [--resume FILE] [--csv FILE]
 *                 [--min-accuracy PCT]
 *
 * --cpu runs on the plain-C reference backend (the oracle: slow), --cpu-fast
 * on the fast CPU backend; by default Vulkan, or the fast CPU backend on a
 * machine without a Vulkan device.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <vktrain.h>

enum { CLASSES = 10, SIDE = 28, PIXELS = SIDE * SIDE };

static const char *class_names[CLASSES] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                           "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

typedef struct options {
    const char *model, *device, *data, *checkpoint, *resume, *csv;
    int epochs, batch;
    float lr, min_accuracy;
    uint64_t seed;
    uint32_t limit;
    bool cpu, cpu_fast;
} options;

static void usage(void) {
    fprintf(stderr, "usage: fashion_mnist [--model mlp|cnn] [--epochs N] [--batch B] [--lr LR]\n"
                    "                     [--seed S] [--device INDEX|NAME] [--cpu | --cpu-fast]\n"
                    "                     [--data DIR] [--limit N] [--checkpoint FILE]\n"
                    "                     [--resume FILE] [--csv FILE] [--min-accuracy PCT]\n");
}

static bool parse(int argc, char **argv, options *o) {
    *o = (options){.model = "mlp", .epochs = 10, .batch = 128, .lr = 1e-3f,
                   .csv = "fashion_mnist_metrics.csv"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--cpu") == 0 || strcmp(a, "--cpu-fast") == 0) {
            o->cpu = strcmp(a, "--cpu") == 0;
            o->cpu_fast = !o->cpu;
            continue;
        }
        if (!v) {
            usage();
            return false;
        }
        i++;
        if (strcmp(a, "--model") == 0) o->model = v;
        else if (strcmp(a, "--epochs") == 0) o->epochs = atoi(v);
        else if (strcmp(a, "--batch") == 0) o->batch = atoi(v);
        else if (strcmp(a, "--lr") == 0) o->lr = strtof(v, NULL);
        else if (strcmp(a, "--seed") == 0) o->seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--device") == 0) o->device = v;
        else if (strcmp(a, "--data") == 0) o->data = v;
        else if (strcmp(a, "--limit") == 0) o->limit = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--checkpoint") == 0) o->checkpoint = v;
        else if (strcmp(a, "--resume") == 0) o->resume = v;
        else if (strcmp(a, "--csv") == 0) o->csv = v;
        else if (strcmp(a, "--min-accuracy") == 0) o->min_accuracy = strtof(v, NULL);
        else {
            usage();
            return false;
        }
    }
    if ((strcmp(o->model, "mlp") != 0 && strcmp(o->model, "cnn") != 0) || o->epochs < 1 ||
        o->batch < 1 || !(o->lr > 0)) {
        usage();
        return false;
    }
    return true;
}

/* The two models of the sample. The MLP sees flat 784-pixel vectors, the
 * CNN (1, 28, 28) images. */
static vkt_var build_model(vkt_graph *g, const options *o, vkt_var x) {
    if (strcmp(o->model, "mlp") == 0) {
        vkt_var h = vkt_graph_relu(g, vkt_graph_linear(g, x, 256, "fc1"));
        h = vkt_graph_relu(g, vkt_graph_linear(g, h, 128, "fc2"));
        return vkt_graph_linear(g, h, CLASSES, "fc3");
    }
    vkt_var h = vkt_graph_relu(g, vkt_graph_conv2d(g, x, 32, 3, 1, 1, "conv1")); /* 32x28x28 */
    h = vkt_graph_max_pool2d(g, h, 2, 2);                                       /* 32x14x14 */
    h = vkt_graph_relu(g, vkt_graph_conv2d(g, h, 64, 3, 1, 1, "conv2"));         /* 64x14x14 */
    h = vkt_graph_max_pool2d(g, h, 2, 2);                                       /* 64x7x7 */
    h = vkt_graph_relu(g, vkt_graph_linear(g, vkt_graph_flatten(g, h), 128, "fc1"));
    return vkt_graph_linear(g, h, CLASSES, "fc2");
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One line redrawn in place on a terminal; nothing when the output is a
 * file or pipe (the per-epoch lines say it all there). */
static void progress(bool tty, int epoch, int epochs, uint64_t done, uint64_t total,
                     double elapsed, float loss) {
    if (!tty)
        return;
    int width = 30, filled = (int)(width * done / (total ? total : 1));
    double eta = done ? elapsed / done * (total - done) : 0.0;
    printf("\repoch %d/%d [%.*s%*s] %3d%%  loss %.4f  ETA %3.0fs ", epoch, epochs, filled,
           "==============================", width - filled, "", (int)(100 * done / total),
           loss, eta);
    fflush(stdout);
}

typedef struct evaluation {
    double loss, accuracy;
    uint32_t confusion[CLASSES][CLASSES]; /* [true][predicted] */
} evaluation;

/* Runs the whole test set through the evaluation buffer, padding the last
 * short batch; loss and accuracy are computed here from the logits so the
 * padding does not count. */
static vkt_result evaluate(vkt_model *m, vkt_var x, vkt_var y, vkt_var logits,
                           const vkt_dataset *test, int batch, size_t sample_size,
                           evaluation *ev) {
    memset(ev, 0, sizeof *ev);
    vkt_dataset_info info;
    vkt_dataset_query(test, &info);
    float *xb = calloc((size_t)batch * sample_size, sizeof *xb);
    float *yb = calloc((size_t)batch, sizeof *yb);
    float *out = calloc((size_t)batch * CLASSES, sizeof *out);
    vkt_result r = xb && yb && out ? VKT_OK : VKT_ERROR_OUT_OF_HOST_MEMORY;
    uint32_t correct = 0;
    for (uint32_t first = 0; r == VKT_OK && first < info.count; first += (uint32_t)batch) {
        uint32_t n = info.count - first < (uint32_t)batch ? info.count - first : (uint32_t)batch;
        memcpy(xb, info.features + (size_t)first * sample_size, n * sample_size * sizeof *xb);
        memcpy(yb, info.labels + first, n * sizeof *yb);
        vkt_feed feeds[2] = {{x, xb, (size_t)batch * sample_size}, {y, yb, (size_t)batch}};
        float ignored;
        r = vkt_model_evaluate(m, feeds, 2, &ignored);
        if (r == VKT_OK)
            r = vkt_model_read(m, logits, out, (size_t)batch * CLASSES);
        for (uint32_t i = 0; r == VKT_OK && i < n; i++) {
            const float *z = out + i * CLASSES;
            int best = 0, label = (int)yb[i];
            double mx = z[0], sum = 0.0;
            for (int c = 1; c < CLASSES; c++) {
                best = z[c] > z[best] ? c : best;
                mx = z[c] > mx ? z[c] : mx;
            }
            for (int c = 0; c < CLASSES; c++)
                sum += exp(z[c] - mx);
            ev->loss += (mx + log(sum) - z[label]) / info.count;
            ev->confusion[label][best]++;
            correct += best == label;
        }
    }
    ev->accuracy = 100.0 * correct / info.count;
    free(xb);
    free(yb);
    free(out);
    return r;
}

static void print_confusion(const evaluation *ev) {
    printf("\nconfusion matrix (rows: true class, columns: predicted)\n%12s", "");
    for (int c = 0; c < CLASSES; c++)
        printf(" %5d", c);
    printf("\n");
    for (int t = 0; t < CLASSES; t++) {
        printf("%d %-10s", t, class_names[t]);
        for (int p = 0; p < CLASSES; p++)
            printf(" %5u", ev->confusion[t][p]);
        printf("\n");
    }
}

#define CHECK(call)                                                                            \
    do {                                                                                       \
        if ((call) != VKT_OK) {                                                                \
            fprintf(stderr, "fashion_mnist: %s\n", vkt_context_last_error(ctx));              \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

int main(int argc, char **argv) {
    options o;
    if (!parse(argc, argv, &o))
        return 2;
    bool flat = strcmp(o.model, "mlp") == 0;
    vkt_dataset *train_full, *test, *train;
    vkt_fashion_mnist_desc data = {.dir = o.data, .mean = VKT_FASHION_MNIST_MEAN,
                                   .std = VKT_FASHION_MNIST_STD, .flatten = flat};
    if (vkt_dataset_load_fashion_mnist(&data, &train_full) != VKT_OK ||
        vkt_dataset_load_fashion_mnist(&(vkt_fashion_mnist_desc){.dir = o.data, .test = true,
                                                                 .mean = data.mean,
                                                                 .std = data.std,
                                                                 .flatten = flat},
                                       &test) != VKT_OK) {
        fprintf(stderr, "fashion_mnist: %s\n", vkt_last_error());
        return 1;
    }
    vkt_dataset_info info;
    vkt_dataset_query(train_full, &info);
    uint32_t count = o.limit && o.limit < info.count ? o.limit : info.count;
    if (vkt_dataset_subset(train_full, 0, count, &train) != VKT_OK) {
        fprintf(stderr, "fashion_mnist: %s\n", vkt_last_error());
        return 1;
    }
    vkt_dataset_destroy(train_full);

    vkt_context *ctx;
    vkt_context_desc cdesc = {.backend = o.cpu        ? VKT_BACKEND_CPU
                                           : o.cpu_fast ? VKT_BACKEND_CPU_FAST
                                                        : VKT_BACKEND_DEFAULT,
                              .device = o.device};
    if (vkt_context_create(&cdesc, &ctx) != VKT_OK) {
        fprintf(stderr, "fashion_mnist: %s\n", vkt_last_error());
        return 1;
    }
    vkt_context_info cinfo;
    vkt_context_query(ctx, &cinfo);

    vkt_graph *g;
    CHECK(vkt_graph_create(ctx, &(vkt_graph_desc){.seed = o.seed}, &g));
    vkt_var x = flat ? vkt_graph_input(g, "images", 2, (int64_t[]){o.batch, PIXELS})
                     : vkt_graph_input(g, "images", 4, (int64_t[]){o.batch, 1, SIDE, SIDE});
    vkt_var y = vkt_graph_input(g, "labels", 1, (int64_t[]){o.batch});
    vkt_var logits = build_model(g, &o, x);
    vkt_var loss = vkt_graph_softmax_cross_entropy(g, logits, y);
    if (vkt_graph_status(g) != VKT_OK) {
        fprintf(stderr, "fashion_mnist: %s\n", vkt_graph_last_error(g));
        return 1;
    }
    vkt_model *m;
    CHECK(vkt_model_create(g, &(vkt_model_desc){.loss = loss, .optimizer = {.lr = o.lr}}, &m));
    vkt_model_info minfo;
    vkt_model_query(m, &minfo);
    printf("Fashion-MNIST %s on %s: %llu parameters, %u training images, %u test images, batch %d\n",
           o.model, cinfo.device_name, (unsigned long long)minfo.parameter_count, count, 10000,
           o.batch);

    vkt_batcher *batches;
    if (vkt_batcher_create(train, &(vkt_batcher_desc){.batch_size = (uint32_t)o.batch,
                                                      .seed = o.seed, .drop_last = true,
                                                      .prefetch = true},
                           &batches) != VKT_OK) {
        fprintf(stderr, "fashion_mnist: %s\n", vkt_last_error());
        return 1;
    }
    vkt_batcher_info binfo;
    vkt_batcher_query(batches, &binfo);
    int first_epoch = 1;
    if (o.resume) {
        vkt_checkpoint_info ck;
        CHECK(vkt_model_load(m, o.resume, &ck));
        vkt_batcher_state state = {.seed = o.seed, .epoch = ck.epoch, .position = 0};
        if (vkt_batcher_restore(batches, &state) != VKT_OK) {
            fprintf(stderr, "fashion_mnist: %s\n", vkt_last_error());
            return 1;
        }
        first_epoch = (int)ck.epoch + 1;
        printf("resumed from %s after epoch %llu (step %llu)\n", o.resume,
               (unsigned long long)ck.epoch, (unsigned long long)ck.step);
    }
    FILE *csv = o.csv && *o.csv ? fopen(o.csv, first_epoch > 1 ? "a" : "w") : NULL;
    if (csv && first_epoch == 1)
        fprintf(csv, "epoch,train_loss,test_loss,test_accuracy,samples_per_second,seconds\n");
    bool tty = isatty(STDOUT_FILENO);
    evaluation ev = {0};
    for (int epoch = first_epoch; epoch <= o.epochs; epoch++) {
        double start = now_seconds(), loss_sum = 0.0;
        for (uint64_t b = 0; b < binfo.batches_per_epoch; b++) {
            vkt_batch batch;
            if (vkt_batcher_next_view(batches, &batch) != VKT_OK) {
                fprintf(stderr, "fashion_mnist: %s\n", vkt_last_error());
                return 1;
            }
            vkt_feed feeds[2] = {{x, batch.features, (size_t)o.batch * binfo.sample_size},
                                 {y, batch.labels, (size_t)o.batch}};
            float l;
            CHECK(vkt_model_step(m, feeds, 2, &l));
            loss_sum += l;
            if (b % 20 == 0 || b + 1 == binfo.batches_per_epoch)
                progress(tty, epoch, o.epochs, b + 1, binfo.batches_per_epoch,
                         now_seconds() - start, (float)(loss_sum / (b + 1)));
        }
        double train_seconds = now_seconds() - start;
        CHECK(evaluate(m, x, y, logits, test, o.batch, binfo.sample_size, &ev));
        double seconds = now_seconds() - start;
        double rate = binfo.batches_per_epoch * o.batch / train_seconds;
        double train_loss = loss_sum / binfo.batches_per_epoch;
        printf("%sepoch %2d/%d  train loss %.4f  test loss %.4f  test accuracy %.2f%%  "
               "%.0f samples/s  %.1fs\n",
               tty ? "\r\033[K" : "", epoch, o.epochs, train_loss, ev.loss, ev.accuracy, rate,
               seconds);
        fflush(stdout);
        if (csv) {
            fprintf(csv, "%d,%.6f,%.6f,%.4f,%.1f,%.3f\n", epoch, train_loss, ev.loss, ev.accuracy,
                    rate, seconds);
            fflush(csv);
        }
        if (o.checkpoint) {
            vkt_checkpoint_desc ck = {.epoch = (uint64_t)epoch};
            CHECK(vkt_model_save(m, o.checkpoint, &ck));
        }
    }
    if (csv)
        fclose(csv);
    if (first_epoch <= o.epochs)
        print_confusion(&ev);
    printf("final test accuracy %.2f%%\n", ev.accuracy);
    vkt_batcher_destroy(batches);
    vkt_model_destroy(m);
    vkt_graph_destroy(g);
    vkt_context_destroy(ctx);
    vkt_dataset_destroy(train);
    vkt_dataset_destroy(test);
    return ev.accuracy >= o.min_accuracy ? 0 : 1;
}
