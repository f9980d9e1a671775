#include "engine/data/teacher.h"

#include <stdlib.h>
#include <string.h>

void rf_teacher_reply_clear(rf_teacher_reply *r)
{
    free(r->text);
    memset(r, 0, sizeof *r);
}

int rf_teacher_ask(rf_teacher *t, const char *prompt, const rf_teacher_sampling *s,
                   rf_teacher_reply *out, rf_error *err)
{
    rf_chat_msg m = {"user", prompt};
    rf_teacher_request r = {&m, 1};
    return t->chat(t, &r, 1, s, out, err);
}

void rf_teacher_free(rf_teacher *t)
{
    if (t) t->destroy(t);
}
